package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// defaultTimeout bounds how long a Start waits for its component to be ready.
	defaultTimeout = 2 * time.Minute
	// defaultStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	defaultStopTimeout = 10 * time.Second
	// pollInterval is how often readiness conditions are checked.
	pollInterval = 100 * time.Millisecond
	// portAttempts is how many times a component is started on fresh ports
	// when another process took a port between choosing and binding it.
	portAttempts = 3
)

// errPortInUse marks a start that failed because a chosen port was taken
// before the child bound it; the caller retries with new ports.
var errPortInUse = errors.New("port already in use")

// procSpec describes one child process.
type procSpec struct {
	name string   // short name, also the log file's name: name + ".log"
	path string   // program path
	args []string // arguments; may hold secrets, so they are never logged
	dir  string   // working folder
	// logDir holds the log, name + ".log". Default: dir.
	logDir string
	// env is added to the parent's environment after dropping every variable
	// whose name starts with one of dropEnv.
	env     []string
	dropEnv []string
	// redact lists secrets that must not reach the log (each is replaced),
	// and redactLines prefixes after which the rest of a line is dropped.
	redact      []string
	redactLines []string
}

// process is one running child in its own process group.
type process struct {
	name    string
	logPath string
	pid     int
	done    chan struct{} // closed once the child has exited and been reaped
	waitErr error         // the exit status; read only after done is closed

	stopOnce sync.Once
}

// startProcess starts spec with stdout and stderr appended to its log file.
// The child runs in its own process group and, on Linux, gets SIGKILL when
// the thread that started it dies.
func startProcess(spec procSpec) (*process, error) {
	logPath := filepath.Join(orDefault(spec.logDir, spec.dir), spec.name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w; check that %s is writable", spec.name, err, spec.dir)
	}
	fmt.Fprintf(logFile, "--- devstack: starting %s at %s\n", spec.name, time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(spec.path, spec.args...)
	cmd.Dir = spec.dir
	var out io.Writer = logFile
	var redactor *redactWriter
	if len(spec.redact) > 0 || len(spec.redactLines) > 0 {
		redactor = newRedactWriter(logFile, spec.redact, spec.redactLines)
		out = redactor
		// The output is copied through a pipe; if a grandchild keeps it open
		// after the child exits, stop waiting for it after a while.
		cmd.WaitDelay = 5 * time.Second
	}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = childEnv(os.Environ(), spec.dropEnv, spec.env)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w; check the program with FindBinary or rerun scripts/setup.sh", spec.name, spec.path, err)
	}
	p := &process{name: spec.name, logPath: logPath, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		if redactor != nil {
			redactor.Close()
		}
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv returns base without the variables whose names start with one of
// drop, followed by extra.
func childEnv(base, drop, extra []string) []string {
	env := make([]string, 0, len(base)+len(extra))
next:
	for _, kv := range base {
		for _, prefix := range drop {
			if strings.HasPrefix(kv, prefix) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// exited reports whether the child has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signalGroup sends sig to the child's whole process group. A group that is
// gone already is not an error.
func (p *process) signalGroup(sig syscall.Signal) {
	// The group id is the leader's pid: it stays reserved while any member of
	// the group lives, so this cannot reach an unrelated process.
	_ = syscall.Kill(-p.pid, sig)
}

// stop sends SIGTERM to the group, waits up to grace for the child to exit,
// then sends SIGKILL and waits for the exit. It also kills whatever else is
// left in the group. It signals only once: a later or concurrent call waits
// for the first one.
func (p *process) stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		if !p.exited() {
			p.signalGroup(syscall.SIGTERM)
			timer := time.NewTimer(grace)
			select {
			case <-p.done:
			case <-timer.C:
				p.signalGroup(syscall.SIGKILL)
				<-p.done
			}
			timer.Stop()
		}
		p.signalGroup(syscall.SIGKILL)
	})
}

// exitError describes an early exit with the tail of the log. If the log
// shows that a port was taken, the error wraps errPortInUse.
func (p *process) exitError() error {
	tail := logTail(p.logPath)
	err := fmt.Errorf("%s exited before it was ready (%v); its log %s ends with:\n%s", p.name, p.waitErr, p.logPath, tail)
	if strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return err
}

// logTail returns the last lines of a log file, at most about 4 KiB.
func logTail(path string) string {
	const maxBytes = 4096
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		if _, err := f.Seek(-maxBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	text := string(data)
	if len(data) == maxBytes {
		// Drop the partial first line.
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
	}
	return strings.TrimRight(text, "\n")
}

// waitReady checks ready every pollInterval until it returns nil. It fails
// when one of procs exits (with the tail of its log), when ctx ends, or when
// the deadline passes (with the last check's error and the tail of the first
// process's log).
func waitReady(ctx context.Context, deadline time.Time, what string, ready func(context.Context) error, procs ...*process) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var lastErr error
	for {
		for _, p := range procs {
			if p.exited() {
				return fmt.Errorf("wait for %s: %w", what, p.exitError())
			}
		}
		checkCtx, checkCancel := context.WithTimeout(ctx, 10*time.Second)
		lastErr = ready(checkCtx)
		checkCancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			// A child may have died while the last check ran.
			for _, p := range procs {
				if p.exited() {
					return fmt.Errorf("wait for %s: %w", what, p.exitError())
				}
			}
			msg := fmt.Sprintf("wait for %s: not ready (last check: %v)", what, lastErr)
			if len(procs) > 0 {
				msg += fmt.Sprintf("; its log %s ends with:\n%s", procs[0].logPath, logTail(procs[0].logPath))
			}
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Errorf("%s: %w; raise the Timeout option if the machine is slow", msg, context.DeadlineExceeded)
			}
			return fmt.Errorf("%s: %w", msg, context.Cause(ctx))
		case <-ticker.C:
		}
	}
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment
// ago. Each one is left in TIME_WAIT by a connection closed from the
// listener's side, which keeps Linux from handing it out again for bind(0)
// for about a minute, while a program that binds it explicitly (Go, and most
// servers, set SO_REUSEADDR) still can.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("choose a free port on 127.0.0.1: %w; check that loopback is up", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		if err := reserve(l); err != nil {
			return nil, fmt.Errorf("reserve port %d: %w", ports[len(ports)-1], err)
		}
	}
	return ports, nil
}

// freePortPair returns a port p on 127.0.0.1 such that p and p+1 were both
// free a moment ago, each reserved as freePorts does.
func freePortPair() (int, error) {
	var lastErr error
	for range 20 {
		ports, err := freePorts(1)
		if err != nil {
			return 0, err
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]+1)))
		if err != nil {
			lastErr = err
			continue
		}
		err = reserve(l)
		l.Close()
		if err == nil {
			return ports[0], nil
		}
		lastErr = err
	}
	return 0, fmt.Errorf("find two consecutive free ports on 127.0.0.1: %w", lastErr)
}

// reserve connects to l and closes the accepted end first, so that the port
// sits in TIME_WAIT.
func reserve(l net.Listener) error {
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		return err
	}
	return s.Close()
}

// componentDir returns dir as an absolute path, made if missing. An empty dir
// is an error naming the option to set.
func componentDir(dir, option string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("%s is empty: set it to a folder for data and logs (in tests, t.TempDir())", option)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s %q: %w", option, dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("make %s %q: %w; check its parent's permissions", option, abs, err)
	}
	return abs, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// loggerOr returns l, or slog.Default() when l is nil.
func loggerOr(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
