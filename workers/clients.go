package workers

// ClientsConfig: ClientsConfig lists the clients the gateway authenticates (agents and humans) and their limits.
type ClientsConfig struct{}

// validate names every bad field.
func (c ClientsConfig) validate() []error { return nil }
