//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/reins-dev/reins/activities"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// statefulSet creates StatefulSet name with one replica and returns its pod
// <name>-0 once it runs.
func statefulSet(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	one := int32(1)
	labels := map[string]string{"app": name}
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &one,
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/" + name + ":v1"}}},
			},
		},
	}
	if _, err := stack.kc.AppsV1().StatefulSets(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return runningPod(t, ns, name+"-0", "")
}

// runningPod waits until pod name runs with a UID other than not, and returns it.
func runningPod(t *testing.T, ns, name string, not types.UID) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	waitFor(t, "pod "+ns+"/"+name+" running", func() (bool, error) {
		var err error
		p, err = stack.kc.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if isNotFound(err) {
			return false, nil
		}
		return err == nil && p.UID != not && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning, err
	})
	return p
}

// quarantinePolicy reads the quarantine NetworkPolicy of a pod with a short name.
func quarantinePolicy(t *testing.T, ns, pod string) (*networkingv1.NetworkPolicy, error) {
	t.Helper()
	return stack.kc.NetworkingV1().NetworkPolicies(ns).Get(context.Background(), "reins-quarantine-"+pod, metav1.GetOptions{})
}

// wantIsolates fails unless np denies all traffic of exactly p and is owned by it.
func wantIsolates(t *testing.T, np *networkingv1.NetworkPolicy, p *corev1.Pod) {
	t.Helper()
	sel := np.Spec.PodSelector
	if len(sel.MatchLabels) != 1 || sel.MatchLabels[remediation.QuarantineLabel] != string(p.UID) || len(sel.MatchExpressions) != 0 ||
		len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 || len(np.Spec.PolicyTypes) != 2 {
		t.Errorf("policy %s does not deny all traffic of exactly pod %s (uid %s): %+v", np.Name, p.Name, p.UID, np.Spec)
	}
	if len(np.OwnerReferences) != 1 || np.OwnerReferences[0].Kind != "Pod" || np.OwnerReferences[0].UID != p.UID {
		t.Errorf("policy %s owners %+v, want pod %s (uid %s)", np.Name, np.OwnerReferences, p.Name, p.UID)
	}
}

// policyDir writes a policy bundle of one file and returns its folder.
func policyDir(t *testing.T, rego string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runOnce starts plan and waits for the end of the run it started (a plan's
// ID is reused by every run, as a re-fired incident's is).
func runOnce(t *testing.T, w worker, p remediation.Plan) (string, workflows.Status) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, joined, err := workflows.Start(ctx, stack.client, w.cfg.TaskQueue, workflows.RemediationInput{Plan: p})
	if err != nil || joined {
		t.Fatalf("start: joined %t, %v", joined, err)
	}
	st, err := workflows.Result(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	return run.GetRunID(), st
}

// A StatefulSet's pod, quarantined, is deleted and recreated under the same
// name: its policy goes with it (the pod owns it). A policy an older reins
// left behind (no owner, selecting the earlier pod's UID) is adopted by the
// next quarantine, which the undo removes; a quarantine then isolates the new
// pod. Every write is made with the per-step Vault credentials.
func TestQuarantineOfARecreatedStatefulSetPod(t *testing.T) {
	w := startVaultWorker(t, vaultWorkerConfig("testdata/allow-all"))
	ctx := context.Background()
	ns := envNamespace(t, "it-requarantine", "staging")
	first := statefulSet(t, ns, "web")
	quarantine := step(remediation.ActionQuarantinePod, remediation.KindPod, ns, "web-0", remediation.Params{})

	wantState(t, w.run(t, plan("staging", quarantine)), remediation.StateCompleted)
	np, err := quarantinePolicy(t, ns, "web-0")
	if err != nil {
		t.Fatal(err)
	}
	wantIsolates(t, np, first)

	if err := stack.kc.CoreV1().Pods(ns).Delete(ctx, "web-0", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	second := runningPod(t, ns, "web-0", first.UID)
	waitFor(t, "the quarantine policy deleted with its pod", func() (bool, error) {
		_, err := quarantinePolicy(t, ns, "web-0")
		return isNotFound(err), nil
	})

	// What a quarantine made before policies had owners left behind.
	stale := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "reins-quarantine-web-0", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{remediation.QuarantineLabel: string(first.UID)}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	if _, err := stack.kc.NetworkingV1().NetworkPolicies(ns).Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	failingStep := step(remediation.ActionSetImage, remediation.KindStatefulSet, ns, "web", remediation.Params{Container: "no-such-container", Image: "registry.example/x:v1"})
	st := w.run(t, plan("staging", quarantine, failingStep))
	wantState(t, st, remediation.StateRolledBack)
	if st.Steps[0].State != remediation.StepCompensated {
		t.Errorf("quarantine step: %s (%s), want compensated", st.Steps[0].State, st.Steps[0].Error)
	}
	p, err := stack.kc.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quarantinePolicy(t, ns, "web-0"); p.Labels[remediation.QuarantineLabel] != "" || !isNotFound(err) {
		t.Errorf("undone quarantine left label %q, policy %v", p.Labels[remediation.QuarantineLabel], err)
	}

	if _, err := stack.kc.NetworkingV1().NetworkPolicies(ns).Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantState(t, w.run(t, plan("staging", quarantine)), remediation.StateCompleted)
	if np, err = quarantinePolicy(t, ns, "web-0"); err != nil {
		t.Fatal(err)
	}
	wantIsolates(t, np, second)
	if p, err = stack.kc.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{}); err != nil || p.Labels[remediation.QuarantineLabel] != string(second.UID) {
		t.Errorf("pod web-0 labels %v (%v), want %s=%s", p.Labels, err, remediation.QuarantineLabel, second.UID)
	}
}

// cosignScales allows every step but scales, which wait for a co-signer.
const cosignScales = `package reins.policy

default decision := {"effect": "allow", "risk": "low", "reasons": ["allowed"]}

decision := {"effect": "cosign", "risk": "high", "approvers": 1, "group": "oncall-sre", "reasons": ["a scale waits for a co-signer"]} if {
	input.step.action == "kubernetes.scale"
}
`

// A quarantined pod replaced by its StatefulSet while the next step waits
// for a co-signer: the abort's undo finds a namesake, leaves it alone, and
// the remediation ends Aborted, not NeedsHuman.
func TestUndoOfAReplacedPodLeavesTheNamesake(t *testing.T) {
	w := startWorker(t, policyDir(t, cosignScales))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns := namespace(t)
	first := statefulSet(t, ns, "db")
	p := plan("staging",
		step(remediation.ActionQuarantinePod, remediation.KindPod, ns, "db-0", remediation.Params{}),
		step(remediation.ActionScale, remediation.KindStatefulSet, ns, "db", replicas(1)))
	run, _ := w.startAwaiting(t, ctx, p, 1)
	if err := stack.kc.CoreV1().Pods(ns).Delete(ctx, "db-0", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	namesake := runningPod(t, ns, "db-0", first.UID)
	if err := workflows.Abort(ctx, stack.client, run.GetID(), workflows.AbortSignal{Reason: "test: the pod was replaced", By: "integration"}); err != nil {
		t.Fatal(err)
	}
	st, err := workflows.Result(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, remediation.StateAborted)
	if st.Steps[0].State != remediation.StepCompensated {
		t.Errorf("quarantine step: %s (%s), want compensated", st.Steps[0].State, st.Steps[0].Error)
	}
	now, err := stack.kc.CoreV1().Pods(ns).Get(ctx, "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if now.UID != namesake.UID || now.Annotations[remediation.AnnotationRemediation] != "" || now.Labels[remediation.QuarantineLabel] != "" {
		t.Errorf("the namesake %s was written: %+v", namesake.UID, now.ObjectMeta)
	}
}

// denyFlapping denies a step whose target was changed more than once in the window.
const denyFlapping = `package reins.policy

default decision := {"effect": "allow", "risk": "low", "reasons": ["allowed"]}

decision := {"effect": "deny", "risk": "high", "reasons": [sprintf("target changed %d times", [input.history.target_actions])]} if {
	input.history.target_actions > 1
}
`

// A re-fired incident's remediation (same ID, new run) records an Event of
// its own for each run, and the flapping limit counts the earlier runs.
func TestRefiredIncidentCountsItsEarlierRuns(t *testing.T) {
	w := startWorker(t, policyDir(t, denyFlapping))
	ns := namespace(t)
	deployment(t, ns, "web", 1, "registry.example/web:v1")
	p := plan("staging", step(remediation.ActionScale, remediation.KindDeployment, ns, "web", replicas(2)))

	var runs []string
	for range 2 {
		run, st := runOnce(t, w, p)
		wantState(t, st, remediation.StateCompleted)
		runs = append(runs, run)
	}
	events, err := stack.kc.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=" + activities.EventReasonApplied})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range events.Items {
		if ev.Annotations[remediation.AnnotationRemediation] == p.ID {
			seen[ev.Annotations[activities.AnnotationRun]] = true
		}
	}
	if len(seen) != 2 || !seen[runs[0]] || !seen[runs[1]] {
		t.Errorf("events of runs %v, want one of each of %v", seen, runs)
	}
	_, st := runOnce(t, w, p)
	wantState(t, st, remediation.StateDenied)
	if d := st.Steps[0].Decision; d == nil || !strings.Contains(strings.Join(d.Reasons, " "), "target changed 2 times") {
		t.Errorf("decision %+v, want the two earlier runs counted", d)
	}
}

// Pods with the longest names (253 characters, alike but for their end) are
// quarantined, each by a policy of its own with a valid name, and the steps'
// Events are recorded.
func TestQuarantineOfLongPodNames(t *testing.T) {
	w := startWorker(t, "testdata/allow-all")
	ctx := context.Background()
	ns := namespace(t)
	// "reins-quarantine-" and the first 236 characters end with the '-'.
	prefix := strings.Repeat("a", 235) + "-"
	var pods []*corev1.Pod
	for _, end := range []string{"x", "y"} {
		name := prefix + strings.Repeat(end, 253-len(prefix))
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/long:v1"}}},
		}
		if _, err := stack.kc.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, runningPod(t, ns, name, ""))
	}
	st := w.run(t, plan("staging",
		step(remediation.ActionQuarantinePod, remediation.KindPod, ns, pods[0].Name, remediation.Params{}),
		step(remediation.ActionQuarantinePod, remediation.KindPod, ns, pods[1].Name, remediation.Params{})))
	wantState(t, st, remediation.StateCompleted)

	list, err := stack.kc.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 {
		t.Fatalf("%d quarantine policies, want one per pod", len(list.Items))
	}
	for _, np := range list.Items {
		if errs := validation.IsDNS1123Subdomain(np.Name); len(errs) > 0 {
			t.Errorf("policy name %q: %v", np.Name, errs)
		}
		for _, p := range pods {
			if np.Spec.PodSelector.MatchLabels[remediation.QuarantineLabel] == string(p.UID) {
				wantIsolates(t, &np, p)
			}
		}
	}
	events, err := stack.kc.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + activities.EventReasonApplied})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Items) != 2 {
		t.Errorf("%d events, want one per step", len(events.Items))
	}
}
