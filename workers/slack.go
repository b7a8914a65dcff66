package workers

// SlackConfig: Slack configures the Slack approval door (posting co-signature requests, the interactivity endpoint, Socket Mode).
type SlackConfig struct{}

// validate names every bad field.
func (c SlackConfig) validate() []error { return nil }
