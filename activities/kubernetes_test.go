package activities

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/reins-dev/reins/policies"
	"github.com/reins-dev/reins/remediation"
)

// countingSource hands out one client and counts how often it was asked.
type countingSource struct {
	client kubernetes.Interface
	mu     sync.Mutex
	asked  int
}

func (s *countingSource) ClientFor(context.Context, remediation.StepRef) (kubernetes.Interface, func(context.Context) error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	return s.client, func(context.Context) error { return nil }, nil
}

func (s *countingSource) minted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// writes lists the write actions (verb resource) c received.
func writes(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
		default:
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return out
}

// kubeEnv registers k's activities in a test activity environment.
func kubeEnv(k *Kubernetes) *testsuite.TestActivityEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(k.Execute, activity.RegisterOptions{Name: remediation.ActivityExecute})
	env.RegisterActivityWithOptions(k.Verify, activity.RegisterOptions{Name: remediation.ActivityVerify})
	env.RegisterActivityWithOptions(k.Compensate, activity.RegisterOptions{Name: remediation.ActivityCompensate})
	return env
}

func execute(t *testing.T, env *testsuite.TestActivityEnvironment, in remediation.ExecuteInput) (remediation.ExecuteResult, error) {
	t.Helper()
	var res remediation.ExecuteResult
	v, err := env.ExecuteActivity(remediation.ActivityExecute, in)
	if err == nil {
		err = v.Get(&res)
	}
	return res, err
}

func compensate(t *testing.T, env *testsuite.TestActivityEnvironment, in remediation.CompensateInput) (remediation.CompensateResult, error) {
	t.Helper()
	var res remediation.CompensateResult
	v, err := env.ExecuteActivity(remediation.ActivityCompensate, in)
	if err == nil {
		err = v.Get(&res)
	}
	return res, err
}

func pod(name, uid string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID(uid), Labels: labels}}
}

// stalePolicy is the quarantine NetworkPolicy of pod name as a quarantine of
// an earlier pod of that name (uid) left it, before policies had owners.
func stalePolicy(name, uid string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: quarantinePolicyName(name), Namespace: "shop", ResourceVersion: "7"},
		Spec:       quarantineSpec(uid),
	}
}

func podStep(action remediation.Action, name string) remediation.StepRef {
	return remediation.StepRef{Remediation: "r1", Index: 0, Environment: "lab",
		Step: remediation.Step{Action: action, Target: remediation.Target{Namespace: "shop", Kind: remediation.KindPod, Name: name}}}
}

// A StatefulSet's web-0, quarantined, then recreated (new UID) and
// quarantined again: the policy the first quarantine left selects the old
// UID. The second quarantine makes it select the new pod and be owned by it;
// verification accepts only that; the undo removes the label and the policy
// (which isolated nothing before the step); a retry writes nothing more.
func TestQuarantineAdoptsThePolicyOfAnEarlierNamesake(t *testing.T) {
	objs := func() []runtime.Object {
		return []runtime.Object{pod("web-0", "u2", map[string]string{"app": "web"}), stalePolicy("web-0", "u1")}
	}
	reader := fake.NewClientset(objs()...)
	before, err := observe(context.Background(), reader, podStep(remediation.ActionQuarantinePod, "web-0").Step)
	if err != nil {
		t.Fatal(err)
	}
	if before.QuarantinePolicy {
		t.Fatal("a policy selecting the earlier pod's UID counts as this pod's quarantine")
	}
	// One clientset both reads and writes, so that each sees the other's changes.
	k := &Kubernetes{Reader: reader, Writers: StaticClient{Client: reader}, PollInterval: time.Millisecond}
	env := kubeEnv(k)
	sref := podStep(remediation.ActionQuarantinePod, "web-0")
	res, err := execute(t, env, remediation.ExecuteInput{StepRef: sref, Before: before})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || !res.After.QuarantinePolicy || res.After.Quarantine != "u2" {
		t.Errorf("result %+v, want changed, labelled u2, policy", res)
	}
	np, err := reader.NetworkingV1().NetworkPolicies("shop").Get(context.Background(), "reins-quarantine-web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := np.Spec.PodSelector.MatchLabels; len(got) != 1 || got[remediation.QuarantineLabel] != "u2" {
		t.Errorf("policy selects %v, want only %s=u2", got, remediation.QuarantineLabel)
	}
	if !ownedBy(np, "u2") || np.OwnerReferences[0].Name != "web-0" {
		t.Errorf("policy owners %+v, want pod web-0 (u2)", np.OwnerReferences)
	}
	if _, err := env.ExecuteActivity(remediation.ActivityVerify, remediation.VerifyInput{StepRef: sref, Before: before, Timeout: time.Second}); err != nil {
		t.Errorf("verify: %v", err)
	}

	reader.ClearActions()
	if _, err := execute(t, env, remediation.ExecuteInput{StepRef: sref, Before: before}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	for _, w := range writes(reader) {
		if strings.HasSuffix(w, "networkpolicies") && w != "create networkpolicies" {
			t.Errorf("a retry wrote the policy again (%s)", w)
		}
	}

	undo, err := compensate(t, env, remediation.CompensateInput{StepRef: sref, Before: before})
	if err != nil {
		t.Fatal(err)
	}
	p, err := reader.CoreV1().Pods("shop").Get(context.Background(), "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, npErr := reader.NetworkingV1().NetworkPolicies("shop").Get(context.Background(), "reins-quarantine-web-0", metav1.GetOptions{})
	if !undo.Changed || p.Labels[remediation.QuarantineLabel] != "" || p.Labels["app"] != "web" || !apierrors.IsNotFound(npErr) {
		t.Errorf("undo %+v left labels %v, policy %v", undo, p.Labels, npErr)
	}
}

// A quarantine that finds no policy creates one owned by the pod; the undo of
// a quarantine of a pod that was already isolated leaves its policy alone.
func TestQuarantinePolicyOwnedByThePodAndUndoKeepsWhatWasThere(t *testing.T) {
	c := fake.NewClientset(pod("api-1", "u1", nil))
	k := &Kubernetes{Reader: c, Writers: StaticClient{Client: c}}
	env := kubeEnv(k)
	sref := podStep(remediation.ActionQuarantinePod, "api-1")
	before := remediation.Snapshot{Exists: true, UID: "u1"}
	if _, err := execute(t, env, remediation.ExecuteInput{StepRef: sref, Before: before}); err != nil {
		t.Fatal(err)
	}
	np, err := c.NetworkingV1().NetworkPolicies("shop").Get(context.Background(), "reins-quarantine-api-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ownedBy(np, "u1") || !isolates(np, "u1") {
		t.Errorf("policy %+v %+v: want owned by and isolating pod u1", np.OwnerReferences, np.Spec)
	}

	// Quarantined already: a second remediation's step changes nothing, and
	// its undo keeps the label and policy that were there before it.
	already, err := observe(context.Background(), c, sref.Step)
	if err != nil {
		t.Fatal(err)
	}
	if !already.QuarantinePolicy || already.Quarantine != "u1" {
		t.Fatalf("observed %+v, want quarantined", already)
	}
	sref.Remediation = "r2"
	res, err := execute(t, env, remediation.ExecuteInput{StepRef: sref, Before: already})
	if err != nil || res.Changed {
		t.Fatalf("second quarantine: %+v %v, want unchanged", res, err)
	}
	undo, err := compensate(t, env, remediation.CompensateInput{StepRef: sref, Before: already})
	if err != nil || undo.Changed {
		t.Fatalf("undo: %+v %v, want unchanged", undo, err)
	}
	if _, err := c.NetworkingV1().NetworkPolicies("shop").Get(context.Background(), "reins-quarantine-api-1", metav1.GetOptions{}); err != nil {
		t.Errorf("the undo removed the policy that was there before the step: %v", err)
	}
}

// Verification of a quarantine holds only when the policy selects the pod's
// current UID.
func TestVerifyQuarantineNeedsThePolicyOfThisPod(t *testing.T) {
	labelled := map[string]string{remediation.QuarantineLabel: "u2"}
	for _, c := range []struct {
		name   string
		policy *networkingv1.NetworkPolicy
		want   bool
	}{
		{"policy of the earlier namesake", stalePolicy("web-0", "u1"), false},
		{"policy of this pod", stalePolicy("web-0", "u2"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := &Kubernetes{Reader: fake.NewClientset(pod("web-0", "u2", labelled), c.policy)}
			done, seen, err := k.check(context.Background(), remediation.VerifyInput{StepRef: podStep(remediation.ActionQuarantinePod, "web-0")})
			if err != nil || done != c.want {
				t.Errorf("check: done %t (%s) %v, want %t", done, seen, err, c.want)
			}
		})
	}
}

// The undo of a step whose target has been replaced by a namesake succeeds
// without writing: the object the step acted on is gone, and the namesake
// is not ours to change. A target that is still the same is still undone.
func TestCompensateLeavesANamesakeAlone(t *testing.T) {
	unschedulable := false
	for _, c := range []struct {
		name   string
		sref   remediation.StepRef
		before remediation.Snapshot
		now    runtime.Object
	}{
		{"quarantined pod", podStep(remediation.ActionQuarantinePod, "web-0"),
			remediation.Snapshot{Exists: true, UID: "u1"},
			pod("web-0", "u2", map[string]string{remediation.QuarantineLabel: "u2"})},
		{"cordoned node", remediation.StepRef{Remediation: "r1", Step: remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: "n1"}}},
			remediation.Snapshot{Exists: true, UID: "u1", Unschedulable: &unschedulable},
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u2"}, Spec: corev1.NodeSpec{Unschedulable: true}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			writer := fake.NewClientset(c.now)
			src := &countingSource{client: writer}
			env := kubeEnv(&Kubernetes{Reader: fake.NewClientset(c.now), Writers: src})
			res, err := compensate(t, env, remediation.CompensateInput{StepRef: c.sref, Before: c.before})
			if err != nil {
				t.Fatalf("undo failed: %v", err)
			}
			if res.Changed || !strings.Contains(res.Summary, "replaced by a namesake (uid u2)") || !strings.Contains(res.Summary, "nothing to undo") {
				t.Errorf("result %+v, want unchanged, saying the target was replaced", res)
			}
			if src.minted() != 0 || len(writes(writer)) != 0 {
				t.Errorf("credential minted %d times, writes %v: want none", src.minted(), writes(writer))
			}
		})
	}
	// The same object is still set back.
	now := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1"}, Spec: corev1.NodeSpec{Unschedulable: true}}
	writer := fake.NewClientset(now)
	env := kubeEnv(&Kubernetes{Reader: fake.NewClientset(now), Writers: StaticClient{Client: writer}})
	sref := remediation.StepRef{Remediation: "r1", Step: remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: "n1"}}}
	res, err := compensate(t, env, remediation.CompensateInput{StepRef: sref, Before: remediation.Snapshot{Exists: true, UID: "u1", Unschedulable: &unschedulable}})
	if err != nil || !res.Changed {
		t.Errorf("undo of the same node: %+v %v, want changed", res, err)
	}
}

// A delete that finds the pod already replaced by its controller is done:
// by reins when an earlier attempt went on to write (Changed), by someone
// else when none did (nothing changed by reins). Any other step refuses to
// act on the namesake.
func TestExecuteDeleteFindsTheNamesake(t *testing.T) {
	namesake := pod("web-0", "u2", nil)
	writer := fake.NewClientset(namesake)
	src := &countingSource{client: writer}
	env := kubeEnv(&Kubernetes{Reader: fake.NewClientset(namesake), Writers: src})
	before := remediation.Snapshot{Exists: true, UID: "u1"}

	res, err := execute(t, env, remediation.ExecuteInput{StepRef: podStep(remediation.ActionDeletePod, "web-0"), Before: before})
	if err != nil || res.Changed || res.After.Exists {
		t.Errorf("first attempt: %+v %v, want done without a change by reins", res, err)
	}
	env.SetHeartbeatDetails("writing") // an earlier attempt went on to delete
	res, err = execute(t, env, remediation.ExecuteInput{StepRef: podStep(remediation.ActionDeletePod, "web-0"), Before: before})
	if err != nil {
		t.Fatalf("retried delete: %v", err)
	}
	if !res.Changed || res.After.Exists {
		t.Errorf("result %+v, want changed and the pod gone", res)
	}
	_, err = execute(t, env, remediation.ExecuteInput{StepRef: podStep(remediation.ActionQuarantinePod, "web-0"), Before: before})
	if !isFinal(err, remediation.ErrTargetChanged) {
		t.Errorf("quarantine of the namesake: %v, want %s", err, remediation.ErrTargetChanged)
	}
	if src.minted() != 0 || len(writes(writer)) != 0 {
		t.Errorf("credential minted %d times, writes %v: want none", src.minted(), writes(writer))
	}
}

// An abort requested before the write, which reaches the activity through
// its heartbeat's response, stops the write from starting.
func TestExecuteStopsOnAnAbortRequestedBeforeTheWrite(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1"}}
	writer := fake.NewClientset(node)
	src := &countingSource{client: writer}
	k := &Kubernetes{Reader: fake.NewClientset(node), Writers: src}
	// The server's answer to a heartbeat of an activity whose cancellation
	// was requested cancels the activity's context: the test environment
	// has no server, so its heartbeat listener does that.
	bg, abort := context.WithCancel(context.Background())
	defer abort()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{BackgroundActivityContext: bg})
	heartbeats := 0
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) {
		heartbeats++
		abort()
	})
	env.RegisterActivityWithOptions(k.Execute, activity.RegisterOptions{Name: remediation.ActivityExecute})
	schedulable := false
	sref := remediation.StepRef{Remediation: "r1", Step: remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: "n1"}}}
	_, err := execute(t, env, remediation.ExecuteInput{StepRef: sref, Before: remediation.Snapshot{Exists: true, UID: "u1", Unschedulable: &schedulable}})
	// The test environment reports the context's error as the activity's
	// (a worker reports an activity canceled by the server as canceled).
	if err == nil || !strings.Contains(err.Error(), "cordon node/n1 not started: "+context.Canceled.Error()) {
		t.Errorf("got %v, want the context's cancellation", err)
	}
	if heartbeats == 0 {
		t.Error("no heartbeat before the write")
	}
	if src.minted() != 0 || len(writes(writer)) != 0 {
		t.Errorf("credential minted %d times, writes %v: want none", src.minted(), writes(writer))
	}
}

// A new run of a remediation (its incident fired again) records its own
// Event; a retry within a run does not add one; names stay valid object
// names for the longest target names.
func TestEventNamedPerRunAndBounded(t *testing.T) {
	long := strings.Repeat("a", 230) + "-" + strings.Repeat("b", 22) // 253: cut at the '-'
	for _, name := range []string{"web-0", long, strings.Repeat("c", 253)} {
		c := fake.NewClientset()
		sref := podStep(remediation.ActionQuarantinePod, name)
		w1 := writer{cred: &stepCredential{source: StaticClient{Client: c}, ref: sref}, ref: sref, run: "run-1"}
		w2 := w1
		w2.run = "run-2"
		for _, w := range []writer{w1, w1, w2} { // run-1 retried once
			if err := w.event(context.Background(), "u1", EventReasonApplied, "quarantined"); err != nil {
				t.Fatalf("%d-character target: %v", len(name), err)
			}
		}
		list, err := c.CoreV1().Events("shop").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		runs := map[string]bool{}
		for _, ev := range list.Items {
			if errs := validation.IsDNS1123Subdomain(ev.Name); len(errs) > 0 {
				t.Errorf("event name %q (%d characters): %v", ev.Name, len(ev.Name), errs)
			}
			if ev.Annotations[remediation.AnnotationRemediation] != "r1" {
				t.Errorf("event %s annotations %v", ev.Name, ev.Annotations)
			}
			runs[ev.Annotations[AnnotationRun]] = true
		}
		if len(list.Items) != 2 || !runs["run-1"] || !runs["run-2"] {
			t.Errorf("%d-character target: %d events of runs %v, want one of each run", len(name), len(list.Items), runs)
		}
	}
}

// Quarantine policy names are valid object names, unchanged for short pod
// names, and distinct for long pod names that differ only at their end.
func TestQuarantinePolicyNameBounded(t *testing.T) {
	if got := quarantinePolicyName("web-0"); got != "reins-quarantine-web-0" {
		t.Errorf("short name: %q", got)
	}
	a := strings.Repeat("a", 235) + "-" + strings.Repeat("x", 17) // 253 characters; the cut falls on the '-'
	b := strings.Repeat("a", 235) + "-" + strings.Repeat("y", 17)
	na, nb := quarantinePolicyName(a), quarantinePolicyName(b)
	for _, n := range []string{na, nb} {
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Errorf("%q (%d characters): %v", n, len(n), errs)
		}
	}
	if na == nb {
		t.Errorf("two pods share the policy %q", na)
	}
}

// staticDenials counts no denials.
type staticDenials struct{}

func (staticDenials) CountDenials(context.Context, string, time.Time) (int, error) { return 0, nil }

// historyOf records the history the policy is given.
type historyOf struct{ got *policies.History }

func (h *historyOf) Decide(_ context.Context, in policies.Input) remediation.Decision {
	h.got = in.History
	return remediation.Decision{Effect: remediation.EffectAllow}
}

// The rate limits count the earlier runs of the remediation being decided
// (its incident fired again), not its current run; an Event written before
// runs were recorded counts unless it names the remediation.
func TestHistoryCountsEarlierRunsOfTheRemediation(t *testing.T) {
	now := time.Now()
	const thisRun = "default-test-run-id" // the run ID of the test environment
	requester := remediation.Requester{Kind: remediation.RequesterAgent, Name: "bot"}
	ev := func(name, remediationID, run string) runtime.Object {
		a := map[string]string{remediation.AnnotationRemediation: remediationID, remediation.AnnotationRequester: requester.String()}
		if run != "" {
			a[AnnotationRun] = run
		}
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: "shop", Annotations: a},
			InvolvedObject: corev1.ObjectReference{Kind: remediation.KindPod, Namespace: "shop", Name: "web-0"},
			Reason:         EventReasonApplied, Action: string(remediation.ActionQuarantinePod),
			LastTimestamp: metav1.NewTime(now.Add(-time.Minute)),
		}
	}
	reader := fake.NewClientset(pod("web-0", "u2", nil),
		ev("earlier-run", "r1", "run-0"), // counted
		ev("this-run", "r1", thisRun),    // not counted
		ev("legacy-own", "r1", ""),       // not counted: names the remediation, no run
		ev("legacy-other", "r9", ""),     // counted
		ev("other", "r9", "run-9"),       // counted
	)
	engine := &historyOf{}
	p := &Policy{Engine: engine, Reader: reader, Denials: staticDenials{}}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(p.Evaluate, activity.RegisterOptions{Name: remediation.ActivityEvaluatePolicy})
	plan := remediation.Plan{Requester: requester, Environment: "lab", Steps: []remediation.Step{podStep(remediation.ActionQuarantinePod, "web-0").Step}}
	if _, err := env.ExecuteActivity(remediation.ActivityEvaluatePolicy, remediation.PolicyInput{Remediation: "r1", Plan: plan, Index: 0, Now: now}); err != nil {
		t.Fatal(err)
	}
	h := engine.got
	if h == nil || h.TargetActions != 3 || h.RequesterActions != 3 || h.NamespaceQuarantines != 3 {
		t.Errorf("history %+v, want 3 target actions, requester actions and quarantines", h)
	}
}
