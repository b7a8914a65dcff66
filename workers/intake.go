package workers

// IntakeConfig: Intake configures the event doors (Alertmanager, CloudEvents, NATS JetStream) and the triggers that map events to playbooks.
type IntakeConfig struct{}

// validate names every bad field.
func (c IntakeConfig) validate() []error { return nil }
