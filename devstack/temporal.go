package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	sdkclient "go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// TemporalOptions configures StartTemporal. The zero value of every field
// but Dir is a working default.
type TemporalOptions struct {
	// Dir holds the SQLite database (temporal.db) and the log (temporal.log).
	// Required. A database left there by an earlier run is reused, so
	// workflows survive a restart on the same Dir.
	Dir string
	// Namespace is created at launch and reported in Temporal.Namespace.
	// Default: "default" (always created).
	Namespace string
	// Port is the frontend gRPC port on 127.0.0.1. Default: a free port.
	Port int
	// UI runs the Web UI. Default: false (headless, as tests want).
	UI bool
	// UIPort is the Web UI's port on 127.0.0.1 when UI is set.
	// Default: a free port.
	UIPort int
	// UICodecEndpoint is the remote codec server the Web UI calls to decode
	// payloads, e.g. "http://127.0.0.1:8081/codec". Default: none.
	UICodecEndpoint string
	// SearchAttributes are registered at launch, name → type, where type is
	// one of Text, Keyword, Int, Double, Bool, Datetime, KeywordList.
	// Default: none.
	SearchAttributes map[string]string
	// DynamicConfig sets server dynamic configuration, key → value; each value
	// is passed as JSON (e.g. true, 10, "text"). Default: none beyond the dev
	// server's own.
	DynamicConfig map[string]any
	// LogLevel is the server's log level: debug, info, warn or error.
	// Default: "warn".
	LogLevel string
	// Timeout bounds the wait for the frontend to answer. Default: 2 minutes.
	Timeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	// Default: 10 seconds.
	StopTimeout time.Duration
	// Binary is the temporal CLI to run. Default: FindBinary("temporal").
	Binary string
	// Logger receives progress messages. Default: slog.Default().
	Logger *slog.Logger
}

// Temporal is a running `temporal server start-dev`.
type Temporal struct {
	// Address is the frontend's gRPC host:port, for client.Options.HostPort.
	Address string
	// HTTPAddress is the frontend's HTTP API host:port.
	HTTPAddress string
	// MetricsURL is the Prometheus endpoint.
	MetricsURL string
	// UIURL is the Web UI's base URL; empty when headless.
	UIURL string
	// Namespace is the namespace created for the caller.
	Namespace string
	// Dir and LogPath are where the database and the log are.
	Dir     string
	LogPath string

	proc        *process
	stopTimeout time.Duration
	stopWatch   func() bool
	stopOnce    sync.Once
}

// searchAttributeTypes are the types `temporal server start-dev
// --search-attribute` accepts.
func searchAttributeTypes() []string {
	return []string{"Text", "Keyword", "Int", "Double", "Bool", "Datetime", "KeywordList"}
}

// isIdentifier reports whether s is letters, digits and underscores, not
// starting with a digit.
func isIdentifier(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// StartTemporal starts a Temporal dev server on 127.0.0.1 and returns once a
// client can dial it and its health check passes. The server runs until Stop
// is called or ctx is cancelled.
func StartTemporal(ctx context.Context, opts TemporalOptions) (*Temporal, error) {
	log := loggerOr(opts.Logger)
	dir, err := componentDir(opts.Dir, "TemporalOptions.Dir")
	if err != nil {
		return nil, err
	}
	args, err := temporalFixedArgs(dir, opts)
	if err != nil {
		return nil, err
	}
	bin := opts.Binary
	if bin == "" {
		if bin, err = FindBinary("temporal"); err != nil {
			return nil, fmt.Errorf("start temporal: %w", err)
		}
	}
	started := time.Now()
	for attempt := 1; ; attempt++ {
		t, err := startTemporalOnce(ctx, log, bin, dir, args, opts)
		if err == nil {
			log.Info("devstack: temporal ready", "address", t.Address, "ui", t.UIURL,
				"namespace", t.Namespace, "took", time.Since(started).Round(time.Millisecond), "log", t.LogPath)
			return t, nil
		}
		if !errorsIsPortInUse(err) || attempt == portAttempts {
			return nil, fmt.Errorf("start temporal: %w", err)
		}
		log.Warn("devstack: temporal lost a port race, retrying on new ports", "attempt", attempt)
	}
}

// temporalFixedArgs builds the arguments that do not depend on ports, and
// checks the options.
func temporalFixedArgs(dir string, opts TemporalOptions) ([]string, error) {
	level := orDefault(opts.LogLevel, "warn")
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, level) {
		return nil, fmt.Errorf("TemporalOptions.LogLevel %q: use debug, info, warn or error", opts.LogLevel)
	}
	args := []string{
		"server", "start-dev",
		"--disable-config-file", "--disable-config-env",
		"--log-level", level,
		"--log-format", "json",
		"--ip", "127.0.0.1",
		"--db-filename", filepath.Join(dir, "temporal.db"),
	}
	if ns := opts.Namespace; ns != "" && ns != "default" {
		args = append(args, "--namespace", ns)
	}
	for _, name := range sortedKeys(opts.SearchAttributes) {
		typ := opts.SearchAttributes[name]
		if !isIdentifier(name) {
			return nil, fmt.Errorf("TemporalOptions.SearchAttributes: name %q is not an identifier (letters, digits, _)", name)
		}
		if !slices.Contains(searchAttributeTypes(), typ) {
			return nil, fmt.Errorf("TemporalOptions.SearchAttributes[%q]: type %q is not one of %v", name, typ, searchAttributeTypes())
		}
		args = append(args, "--search-attribute", name+"="+typ)
	}
	for _, key := range sortedKeys(opts.DynamicConfig) {
		value, err := json.Marshal(opts.DynamicConfig[key])
		if err != nil {
			return nil, fmt.Errorf("TemporalOptions.DynamicConfig[%q]: encode as JSON: %w", key, err)
		}
		args = append(args, "--dynamic-config-value", key+"="+string(value))
	}
	if opts.UI {
		if opts.UICodecEndpoint != "" {
			args = append(args, "--ui-codec-endpoint", opts.UICodecEndpoint)
		}
	} else {
		args = append(args, "--headless")
	}
	return args, nil
}

func startTemporalOnce(ctx context.Context, log *slog.Logger, bin, dir string, args []string, opts TemporalOptions) (*Temporal, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	port := orDefault(opts.Port, ports[0])
	httpPort, metricsPort, uiPort := ports[1], ports[2], orDefault(opts.UIPort, ports[3])
	args = append(slices.Clip(args),
		"--port", strconv.Itoa(port),
		"--http-port", strconv.Itoa(httpPort),
		"--metrics-port", strconv.Itoa(metricsPort),
	)
	if opts.UI {
		args = append(args, "--ui-ip", "127.0.0.1", "--ui-port", strconv.Itoa(uiPort))
	}
	proc, err := startProcess(procSpec{
		name: "temporal", path: bin, args: args, dir: dir,
		dropEnv: []string{"TEMPORAL_"},
	})
	if err != nil {
		return nil, err
	}
	t := &Temporal{
		Address:     fmt.Sprintf("127.0.0.1:%d", port),
		HTTPAddress: fmt.Sprintf("127.0.0.1:%d", httpPort),
		MetricsURL:  fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		Namespace:   orDefault(opts.Namespace, "default"),
		Dir:         dir,
		LogPath:     proc.logPath,
		proc:        proc,
		stopTimeout: orDefault(opts.StopTimeout, defaultStopTimeout),
	}
	if opts.UI {
		t.UIURL = fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	}
	t.stopWatch = context.AfterFunc(ctx, func() { t.stopProcess() })
	log.Debug("devstack: temporal started", "pid", proc.pid, "log", proc.logPath)

	deadline := time.Now().Add(orDefault(opts.Timeout, defaultTimeout))
	if err := waitReady(ctx, deadline, "temporal frontend at "+t.Address, t.checkHealth, proc); err != nil {
		t.Stop()
		return nil, err
	}
	if t.UIURL != "" {
		if err := waitReady(ctx, deadline, "temporal UI at "+t.UIURL, httpGetOK(http.DefaultClient, t.UIURL), proc); err != nil {
			t.Stop()
			return nil, err
		}
	}
	return t, nil
}

// checkHealth dials the frontend on the caller's namespace and runs the
// health check.
func (t *Temporal) checkHealth(ctx context.Context) error {
	c, err := sdkclient.DialContext(ctx, sdkclient.Options{
		HostPort:  t.Address,
		Namespace: t.Namespace,
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &sdkclient.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("check health: %w", err)
	}
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after StopTimeout) and waits
// for it to exit. The database stays in Dir. Calling Stop again is a no-op.
func (t *Temporal) Stop() {
	t.stopWatch()
	t.stopProcess()
}

func (t *Temporal) stopProcess() {
	t.stopOnce.Do(func() { t.proc.stop(t.stopTimeout) })
}
