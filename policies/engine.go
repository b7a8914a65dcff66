package policies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/reins-dev/reins/remediation"
)

// Defaults of Options.
const (
	// DefaultEvalTimeout bounds one decision when Options.EvalTimeout is zero.
	DefaultEvalTimeout = 100 * time.Millisecond
	// DefaultPollInterval is how often Watch checks the bundle folder when
	// Options.PollInterval is zero.
	DefaultPollInterval = time.Second
)

// Options configure an Engine. The zero value decides with the embedded
// default bundle.
type Options struct {
	// Dir is the bundle folder: its *.rego files (tests included) and its
	// data.json; sub-folders and hidden files are ignored. Default "": the
	// default bundle embedded in the binary, which never changes.
	Dir string
	// Logger receives reloads, refused bundles (with file:line) and decisions
	// the engine had to make itself (timeouts, errors); each decision is logged
	// at debug level. Default nil: slog.Default().
	Logger *slog.Logger
	// EvalTimeout bounds one decision's evaluation, on top of the deadline of
	// the context passed to Decide; past it the decision is deny. Default 0:
	// DefaultEvalTimeout (100ms).
	EvalTimeout time.Duration
	// PollInterval is how often Watch reads Dir to see whether the bundle
	// changed. Default 0: DefaultPollInterval (1s).
	PollInterval time.Duration
}

// Engine decides on steps with a compiled policy bundle. It is safe for
// concurrent use: decisions run in parallel with each other and with reloads,
// and each decision uses one bundle from start to end.
type Engine struct {
	dir          string
	log          *slog.Logger
	evalTimeout  time.Duration
	pollInterval time.Duration

	// state is the bundle in force and the last load error, swapped whole.
	state atomic.Pointer[engineState]

	// mu serializes reloads; lastSeen (guarded by mu) identifies the folder
	// content last tried, so a bundle is compiled, and a bad one logged, once
	// per change.
	mu       sync.Mutex
	lastSeen string
}

type engineState struct {
	// good is the last bundle that compiled; nil if none ever did.
	good *prepared
	// err is why the last load failed; nil if it succeeded.
	err error
}

// New returns an Engine deciding with the bundle in opts.Dir, or the embedded
// default bundle when it is "". The Engine is never nil: when the bundle cannot
// be read or compiled, the error (a *BundleError naming file:line for each
// problem) says why, and the Engine denies every step until Reload or Watch
// loads a good bundle. A caller that prefers not to start without a good
// bundle returns the error.
func New(opts Options) (*Engine, error) {
	e := &Engine{
		dir:          opts.Dir,
		log:          opts.Logger,
		evalTimeout:  opts.EvalTimeout,
		pollInterval: opts.PollInterval,
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.evalTimeout <= 0 {
		e.evalTimeout = DefaultEvalTimeout
	}
	if e.pollInterval <= 0 {
		e.pollInterval = DefaultPollInterval
	}
	e.state.Store(&engineState{})
	return e, e.Reload(context.Background())
}

// Digest is the SHA-256 of the bundle in force (see the package documentation
// for its definition), or "" when no bundle compiled.
func (e *Engine) Digest() string {
	if p := e.state.Load().good; p != nil {
		return p.digest
	}
	return ""
}

// Err is why the last load of the bundle failed, or nil when it succeeded.
// While it is not nil, the last good bundle (if any) stays in force.
func (e *Engine) Err() error {
	return e.state.Load().err
}

// Reload reads the bundle again and, if it changed and compiles, puts it in
// force for the decisions that start from then on. A bundle that does not
// compile is refused: the error (a *BundleError) names file:line for each
// problem, it is logged, and the last good bundle stays in force.
func (e *Engine) Reload(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	files, err := readBundle(e.dir)
	if err != nil {
		e.lastSeen = "unreadable: " + err.Error()
		return e.refuse(err)
	}
	return e.reloadFiles(ctx, files)
}

// reloadFiles compiles files unless they are the bundle in force. e.mu is held.
func (e *Engine) reloadFiles(ctx context.Context, files []bundleFile) error {
	digest := bundleDigest(files)
	e.lastSeen = digest
	st := e.state.Load()
	if st.good != nil && st.good.digest == digest {
		if st.err != nil {
			e.state.Store(&engineState{good: st.good})
		}
		return nil
	}
	start := time.Now()
	p, err := loadFiles(ctx, e.dir, files)
	if err != nil {
		return e.refuse(err)
	}
	e.state.Store(&engineState{good: p})
	attrs := []slog.Attr{
		slog.String("bundle", p.digest),
		slog.String("dir", e.bundleName()),
		slog.Int("files", len(files)),
		slog.Duration("compile", time.Since(start)),
	}
	if st.good != nil {
		attrs = append(attrs, slog.String("previous", st.good.digest))
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "policy bundle in force", attrs...)
	return nil
}

// refuse records a failed load and keeps the last good bundle. e.mu is held.
func (e *Engine) refuse(err error) error {
	st := e.state.Load()
	e.state.Store(&engineState{good: st.good, err: err})
	attrs := []slog.Attr{slog.String("dir", e.bundleName())}
	var be *BundleError
	if errors.As(err, &be) {
		problems := make([]string, len(be.Problems))
		for i, p := range be.Problems {
			problems[i] = p.String()
		}
		attrs = append(attrs, slog.Any("problems", problems))
	} else {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if st.good != nil {
		attrs = append(attrs, slog.String("bundle", st.good.digest))
		e.log.LogAttrs(context.Background(), slog.LevelError, "policy bundle refused; the last good bundle stays in force", attrs...)
	} else {
		e.log.LogAttrs(context.Background(), slog.LevelError, "policy bundle refused; no good bundle: every step is denied", attrs...)
	}
	return err
}

func (e *Engine) bundleName() string {
	if e.dir == "" {
		return "(embedded)"
	}
	return e.dir
}

// Watch reloads the bundle whenever its files change, until ctx ends; then it
// returns nil. It reads the folder every PollInterval and compares the
// bundle's digest with the last one it tried, so an edit is in force within
// about one interval, and a bad edit is logged once (with file:line) while the
// last good bundle stays in force. Polling the content, rather than watching
// file events, sees every kind of change, including a Kubernetes ConfigMap
// volume swapping its symlinks. With the embedded bundle there is nothing to
// watch and Watch returns nil at once.
func (e *Engine) Watch(ctx context.Context) error {
	if e.dir == "" {
		return nil
	}
	t := time.NewTicker(e.pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			e.poll(ctx)
		}
	}
}

// poll reloads the bundle if its files differ from the ones last tried.
func (e *Engine) poll(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	files, err := readBundle(e.dir)
	if err != nil {
		seen := "unreadable: " + err.Error()
		if seen != e.lastSeen {
			e.lastSeen = seen
			_ = e.refuse(err)
		}
		return
	}
	if bundleDigest(files) == e.lastSeen {
		return
	}
	// The outcome is in the log and in Err.
	_ = e.reloadFiles(ctx, files)
}

// Decide decides on one step. It never fails: when the policy cannot decide
// (no good bundle, unknown action, evaluation error or timeout, undefined or
// malformed decision) the decision is deny, and its first reason says which of
// these happened (see the Reason constants). The evaluation ends at ctx's
// deadline or after the engine's EvalTimeout, whichever comes first.
func (e *Engine) Decide(ctx context.Context, in Input) remediation.Decision {
	d := e.decide(ctx, e.state.Load(), in)
	if own := engineDenied(d); own || e.log.Enabled(ctx, slog.LevelDebug) {
		level := slog.LevelDebug
		if own {
			level = slog.LevelWarn
		}
		e.log.LogAttrs(ctx, level, "policy decision",
			slog.String("effect", string(d.Effect)),
			slog.String("risk", string(d.Risk)),
			slog.Int("approvers", d.Approvers),
			slog.Any("reasons", d.Reasons),
			slog.String("bundle", d.Bundle),
			slog.Int("step", in.Index),
			slog.String("action", string(in.Step.Action)),
			slog.String("target", in.Step.Target.String()),
			slog.String("requester", in.Requester.String()))
	}
	return d
}

// engineDenied reports whether d is a deny the engine made itself, the policy
// not having decided (see the Reason constants).
func engineDenied(d remediation.Decision) bool {
	return strings.HasPrefix(firstReason(d), "deny by default:")
}

func firstReason(d remediation.Decision) string {
	if len(d.Reasons) == 0 {
		return ""
	}
	return d.Reasons[0]
}

func (e *Engine) decide(ctx context.Context, st *engineState, in Input) (d remediation.Decision) {
	p := st.good
	if p == nil {
		why := "no bundle was loaded"
		if st.err != nil {
			why = st.err.Error()
		}
		return failure("", ReasonNoBundle+": "+why)
	}
	// A panic in the evaluator must not allow anything either.
	defer func() {
		if r := recover(); r != nil {
			d = failure(p.digest, fmt.Sprintf("%s: the evaluator panicked: %v", ReasonEvalError, r))
		}
	}()
	if err := ctx.Err(); err != nil {
		return failure(p.digest, fmt.Sprintf("%s: %v", ReasonCancelled, context.Cause(ctx)))
	}
	if !knownAction(in.Step.Action) {
		return failure(p.digest, fmt.Sprintf("%s %q; reins knows: %s", ReasonUnknownAction, in.Step.Action, knownActions()))
	}
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	input := in.value()

	// The evaluation stops at the engine's bound or when ctx ends, whichever
	// comes first: OPA asks the deadline before each expression.
	dl := &deadline{ctx: ctx, end: time.Now().Add(e.evalTimeout)}
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(input), evalRaw, evalNoMetrics, rego.EvalExternalCancel(dl))
	timedOut := dl.expired.Load()
	if err != nil {
		return e.evalFailure(ctx, timedOut, p.digest, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return failure(p.digest, ReasonUndefined+": "+Entrypoint+" has no value for this input (no rule matched)")
	}
	v, ok := rs[0].Expressions[0].Value.(ast.Value)
	if !ok {
		return failure(p.digest, fmt.Sprintf("%s: the evaluation returned a %T", ReasonMalformed, rs[0].Expressions[0].Value))
	}
	return parseDecision(v, p.digest)
}

// The options every decision passes, made once.
var (
	// evalRaw keeps the result as the evaluator's AST, saving a conversion.
	evalRaw = rego.EvalGenerateJSON(rawValue)
	// evalNoMetrics: nobody reads a decision's metrics. Without it, OPA would
	// make a fresh set and time the evaluation's stages for every decision.
	evalNoMetrics = rego.EvalMetrics(metrics.NoOp())
)

func rawValue(t *ast.Term, _ *rego.EvalContext) (any, error) {
	return t.Value, nil
}

// deadline is the topdown.Cancel of one decision: it reports the evaluation
// cancelled once ctx has ended or the clock has passed end. OPA asks it
// before each expression it evaluates (and inside long built-ins); it reads
// the clock and ctx on every deadlineEvery-th question only. Unlike a timer
// and a context.AfterFunc, which every decision would arm and disarm, it
// costs one allocation and nothing when the decision ends.
type deadline struct {
	ctx context.Context
	end time.Time
	// asked counts the questions; cancelled is set by Cancel, and once ctx
	// ended or the clock passed end; expired only in the last case.
	asked     atomic.Uint32
	cancelled atomic.Bool
	expired   atomic.Bool
}

// deadlineEvery is how many questions share one reading of the clock: OPA
// evaluates an expression in about a microsecond, so the bound is noticed
// within tens of microseconds.
const deadlineEvery = 32

func (d *deadline) Cancel() { d.cancelled.Store(true) }

func (d *deadline) Cancelled() bool {
	if d.cancelled.Load() {
		return true
	}
	if d.asked.Add(1)%deadlineEvery != 0 {
		return false
	}
	switch {
	case d.ctx.Err() != nil:
	case !time.Now().Before(d.end):
		d.expired.Store(true)
	default:
		return false
	}
	d.cancelled.Store(true)
	return true
}

// evalFailure turns an evaluation error into a deny saying which kind it
// was: the caller's context ended, the engine's own bound passed (timedOut),
// or the policy failed.
func (e *Engine) evalFailure(ctx context.Context, timedOut bool, bundle string, err error) remediation.Decision {
	switch {
	case ctx.Err() != nil:
		return failure(bundle, fmt.Sprintf("%s: %v", ReasonCancelled, context.Cause(ctx)))
	case timedOut || topdown.IsCancel(err):
		return failure(bundle, fmt.Sprintf("%s after %s (the engine's limit); simplify the policy or raise the policy evaluation timeout", ReasonTimeout, e.evalTimeout))
	}
	return failure(bundle, fmt.Sprintf("%s: %v", ReasonEvalError, err))
}

// knownAction reports whether reins knows a. It is remediation.Action.Spec
// without allocating; a test keeps the two in step. An action added to
// remediation but not here is denied: fail closed.
func knownAction(a remediation.Action) bool {
	switch a {
	case remediation.ActionScale, remediation.ActionRolloutRestart, remediation.ActionSetImage,
		remediation.ActionCordon, remediation.ActionUncordon, remediation.ActionQuarantinePod,
		remediation.ActionDeletePod:
		return true
	}
	return false
}

func knownActions() string {
	specs := remediation.Actions()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = string(s.Action)
	}
	return strings.Join(names, ", ")
}
