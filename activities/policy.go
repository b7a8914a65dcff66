package activities

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"go.temporal.io/sdk/activity"

	"github.com/reins-dev/reins/policies"
	"github.com/reins-dev/reins/remediation"
)

// Decider decides on one step; *policies.Engine is the real one. It never
// fails: any problem is a deny with the reason.
type Decider interface {
	Decide(ctx context.Context, in policies.Input) remediation.Decision
}

var _ Decider = (*policies.Engine)(nil)

// DenialCounter counts a requester's denied remediations since a time (from
// Temporal's visibility store, see workers).
type DenialCounter interface {
	CountDenials(ctx context.Context, requester string, since time.Time) (int, error)
}

// HistoryWindow is how far back the policy's history summary looks.
const HistoryWindow = time.Hour

// Policy evaluates a step against the policy bundle, with the target's
// current state and a summary of recent history as context.
type Policy struct {
	Engine Decider
	// Reader reads the target and reins' Kubernetes Events with the worker's
	// read-only identity.
	Reader kubernetes.Interface
	// Denials counts recent denials of a requester.
	Denials DenialCounter
	// Cluster names the cluster Reader reaches (config cluster): a step
	// that names another is denied, its state being unreadable here.
	Cluster string
}

// Evaluate returns the decision on step in.Index. Failing to read the
// target's state or the history is a deny: the policy never decides blind
// inside a remediation.
func (p *Policy) Evaluate(ctx context.Context, in remediation.PolicyInput) (remediation.PolicyResult, error) {
	logger := activity.GetLogger(ctx)
	deny := func(reason string) (remediation.PolicyResult, error) {
		logger.Warn("policy input incomplete, denying", "remediation", in.Remediation, "step", in.Index, "reason", reason)
		return remediation.PolicyResult{Decision: remediation.Decision{
			Effect: remediation.EffectDeny, Risk: remediation.RiskCritical, Reasons: []string{reason}}}, nil
	}
	if in.Index < 0 || in.Index >= len(in.Plan.Steps) {
		return deny(fmt.Sprintf("step %d is not in the plan", in.Index))
	}
	step := in.Plan.Steps[in.Index]
	if err := otherCluster(p.Cluster, step.Target); err != nil {
		return deny("the step is denied: " + err.Error())
	}
	state, err := observe(ctx, p.Reader, step)
	if err != nil {
		return deny("could not read the current state of " + step.Target.String() + ", so the step is denied: " + err.Error())
	}
	if !state.Exists {
		return deny(step.Target.String() + " does not exist")
	}
	history, err := p.history(ctx, in, activity.GetInfo(ctx).WorkflowExecution.RunID, step)
	if err != nil {
		return deny("could not assemble the recent history, so the step is denied: " + err.Error())
	}
	decision := p.Engine.Decide(ctx, policies.NewInput(in.Plan, in.Index, in.Now, &state, history))
	return remediation.PolicyResult{Decision: decision}, nil
}

// history counts, over the last HistoryWindow: the requester's actions, the
// actions on the step's target and the quarantines in its namespace (from the
// Kubernetes Events reins writes on every object it changes, but those of
// run, the workflow run deciding), and the requester's denials.
func (p *Policy) history(ctx context.Context, in remediation.PolicyInput, run string, step remediation.Step) (*policies.History, error) {
	since := in.Now.Add(-HistoryWindow)
	h := &policies.History{WindowSeconds: int(HistoryWindow / time.Second)}
	sel := fields.OneTermEqualSelector("reason", EventReasonApplied).String()
	var cont string
	for {
		list, err := p.Reader.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: sel, Continue: cont, Limit: 500})
		if err != nil {
			return nil, fmt.Errorf("list reins events: %w", err)
		}
		for i := range list.Items {
			countEvent(h, &list.Items[i], in, run, step, since)
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	denials, err := p.Denials.CountDenials(ctx, in.Plan.Requester.String(), since)
	if err != nil {
		return nil, fmt.Errorf("count denials: %w", err)
	}
	h.RequesterDenials = denials
	return h, nil
}

// countEvent adds ev to h unless it is older than since or was written by
// run, the run deciding: its own steps are not history, while the earlier
// runs of the same remediation (its incident fired before) are.
func countEvent(h *policies.History, ev *corev1.Event, in remediation.PolicyInput, run string, step remediation.Step, since time.Time) {
	at := ev.LastTimestamp.Time
	if at.IsZero() {
		at = ev.CreationTimestamp.Time
	}
	if at.Before(since) || ofRun(ev, in.Remediation, run) {
		return
	}
	if ev.Annotations[remediation.AnnotationRequester] == in.Plan.Requester.String() {
		h.RequesterActions++
	}
	obj := ev.InvolvedObject
	if obj.Kind == step.Target.Kind && obj.Name == step.Target.Name && obj.Namespace == step.Target.Namespace {
		h.TargetActions++
	}
	if ev.Action == string(remediation.ActionQuarantinePod) && obj.Namespace == step.Target.Namespace {
		h.NamespaceQuarantines++
	}
}

// ofRun reports whether ev was written by run of remediation id. An Event
// without a run annotation, written before reins recorded runs, is taken to
// be run's when it names the remediation.
func ofRun(ev *corev1.Event, id, run string) bool {
	if r, ok := ev.Annotations[AnnotationRun]; ok {
		return r == run
	}
	return ev.Annotations[remediation.AnnotationRemediation] == id
}

// AnnotationRun, on the Events reins writes, is the ID of the workflow run
// that wrote them: a remediation's ID is reused when its incident fires
// again, its run ID is not.
const AnnotationRun = "reins.dev/run"

// Event reasons reins writes.
const (
	EventReasonApplied     = "ReinsRemediation"
	EventReasonCompensated = "ReinsCompensation"
)

// stepAnnotations are stamped on every object and Event reins writes.
func stepAnnotations(ref remediation.StepRef) map[string]string {
	return map[string]string{
		remediation.AnnotationRemediation: ref.Remediation,
		remediation.AnnotationStep:        strconv.Itoa(ref.Index),
		remediation.AnnotationRequester:   ref.Requester.String(),
	}
}

// eventAnnotations are stamped on every Event reins writes: the step's, and
// the run that wrote it.
func eventAnnotations(ref remediation.StepRef, run string) map[string]string {
	a := stepAnnotations(ref)
	a[AnnotationRun] = run
	return a
}
