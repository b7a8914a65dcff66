package workers

// GatewayClientConfig: GatewayClientConfig is how the CLI reaches the gateway's authenticated API (reins approve, reins deny).
type GatewayClientConfig struct{}

// validate names every bad field.
func (c GatewayClientConfig) validate() []error { return nil }
