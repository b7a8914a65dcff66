package activities

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/reins-dev/reins/remediation"
)

// workloadStep is a step on the Deployment or StatefulSet shop/checkout.
func workloadStep(action remediation.Action, kind string, params remediation.Params) remediation.StepRef {
	return remediation.StepRef{Remediation: "r1", Index: 0, Environment: "lab",
		Step: remediation.Step{Action: action, Target: remediation.Target{Namespace: "shop", Kind: kind, Name: "checkout"}, Params: params}}
}

func scaleTo(n int32) remediation.Params { return remediation.Params{Replicas: &n} }

// stuckCondition is the Progressing condition of a rollout that exceeded its
// progress deadline.
func stuckCondition() appsv1.DeploymentCondition {
	return appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "checkout-bad" has timed out progressing.`}
}

// checkout is the Deployment shop/checkout with spec replicas and the given
// generations and status.
func checkout(replicas int32, generation, observed int64, status appsv1.DeploymentStatus) *appsv1.Deployment {
	status.ObservedGeneration = observed
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop", Generation: generation},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
		Status:     status,
	}
}

// gets counts the reads c answered.
func gets(c *fake.Clientset) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "get" {
			n++
		}
	}
	return n
}

// verify runs the Verify activity on a worker reading c.
func verify(t *testing.T, c *fake.Clientset, in remediation.VerifyInput) (remediation.VerifyResult, error) {
	t.Helper()
	env := kubeEnv(&Kubernetes{Reader: c, PollInterval: 5 * time.Millisecond})
	var res remediation.VerifyResult
	v, err := env.ExecuteActivity(remediation.ActivityVerify, in)
	if err == nil {
		err = v.Get(&res)
	}
	return res, err
}

// Without a Deadline (or with one after it), an attempt waits Timeout from
// its start, polling, and then fails final, naming the timeout.
func TestVerifyWithoutDeadlineWaitsTimeoutFromTheAttempt(t *testing.T) {
	for _, c := range []struct {
		name     string
		deadline time.Time
	}{
		{"zero deadline", time.Time{}},
		{"deadline after the timeout", time.Now().Add(time.Hour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A rollout in progress: never complete, never stuck.
			kc := fake.NewClientset(checkout(3, 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3}))
			in := remediation.VerifyInput{StepRef: workloadStep(remediation.ActionSetImage, remediation.KindDeployment, remediation.Params{}),
				Timeout: 300 * time.Millisecond, Deadline: c.deadline}
			start := time.Now()
			_, err := verify(t, kc, in)
			took := time.Since(start)
			if !isFinal(err, remediation.ErrVerification) || !strings.Contains(err.Error(), "did not converge within 300ms") {
				t.Fatalf("got %v, want a final verification error naming the 300ms timeout", err)
			}
			if took < 300*time.Millisecond || took > 10*time.Second {
				t.Errorf("failed after %s, want the 300ms timeout", took)
			}
			if gets(kc) < 2 {
				t.Errorf("read the Deployment %d times, want it polled", gets(kc))
			}
		})
	}
}

// An attempt that starts after the Deadline (a retry of a verification that
// has used its time) fails final at once, without reading the target.
func TestVerifyPastDeadlineFailsFinalWithoutPolling(t *testing.T) {
	kc := fake.NewClientset(checkout(3, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}))
	deadline := time.Now().Add(-time.Second)
	in := remediation.VerifyInput{StepRef: workloadStep(remediation.ActionSetImage, remediation.KindDeployment, remediation.Params{}),
		Timeout: time.Minute, Deadline: deadline}
	_, err := verify(t, kc, in)
	want := "shop/deployment/checkout was not verified by " + deadline.UTC().Format(time.RFC3339)
	if !isFinal(err, remediation.ErrVerification) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want a final verification error containing %q", err, want)
	}
	if len(kc.Actions()) != 0 {
		t.Errorf("the expired attempt called the API server: %v", kc.Actions())
	}
}

// A Deadline before the attempt's Timeout ends the wait: the attempt waits
// only until it, then fails final, naming it.
func TestVerifyWaitsOnlyUntilTheDeadline(t *testing.T) {
	kc := fake.NewClientset(checkout(3, 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3}))
	deadline := time.Now().Add(300 * time.Millisecond)
	in := remediation.VerifyInput{StepRef: workloadStep(remediation.ActionSetImage, remediation.KindDeployment, remediation.Params{}),
		Timeout: time.Minute, Deadline: deadline}
	start := time.Now()
	_, err := verify(t, kc, in)
	took := time.Since(start)
	if !isFinal(err, remediation.ErrVerification) || !strings.Contains(err.Error(), "was not verified by "+deadline.UTC().Format(time.RFC3339)) {
		t.Fatalf("got %v, want a final verification error naming the deadline", err)
	}
	if took > 10*time.Second {
		t.Errorf("waited %s, want about 300ms (the deadline), not the minute of Timeout", took)
	}
	if gets(kc) < 2 {
		t.Errorf("read the Deployment %d times, want it polled until the deadline", gets(kc))
	}
}

// The status of a Deployment whose controller has not observed the step's
// change yet, ProgressDeadlineExceeded included, is left over from before:
// it neither fails nor completes the step. Once observed, a stuck rollout
// still fails final.
func TestVerifyRolloutTrustsStatusOnlyOnceObserved(t *testing.T) {
	complete := appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3, ReadyReplicas: 3}
	stale := complete
	stale.Conditions = []appsv1.DeploymentCondition{stuckCondition()}
	for _, c := range []struct {
		name      string
		d         *appsv1.Deployment
		wantDone  bool
		wantFinal bool
	}{
		{"stale ProgressDeadlineExceeded, change not observed", checkout(3, 3, 2, stale), false, false},
		{"complete status of the previous generation", checkout(3, 3, 2, complete), false, false},
		{"ProgressDeadlineExceeded of the observed generation", checkout(3, 3, 3, stale), false, true},
		{"complete, observed", checkout(3, 3, 3, complete), true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, action := range []remediation.Action{remediation.ActionSetImage, remediation.ActionRolloutRestart} {
				k := &Kubernetes{Reader: fake.NewClientset(c.d)}
				done, seen, err := k.check(context.Background(), remediation.VerifyInput{StepRef: workloadStep(action, remediation.KindDeployment, remediation.Params{})})
				if done != c.wantDone || isFinal(err, remediation.ErrVerification) != c.wantFinal || (err != nil) != c.wantFinal {
					t.Errorf("%s: done %t (%s), err %v; want done %t, final error %t", action, done, seen, err, c.wantDone, c.wantFinal)
				}
			}
		})
	}
}

// A scale verifies the count it set, not the rollout in progress: a stuck
// rollout (ProgressDeadlineExceeded, observed) does not fail it.
func TestVerifyScaleDuringAStuckRollout(t *testing.T) {
	stuck := func(total, updated, available int32) appsv1.DeploymentStatus {
		return appsv1.DeploymentStatus{Replicas: total, UpdatedReplicas: updated, AvailableReplicas: available, ReadyReplicas: available,
			Conditions: []appsv1.DeploymentCondition{stuckCondition()}}
	}
	for _, c := range []struct {
		name string
		d    *appsv1.Deployment
		want bool
	}{
		{"available replicas reach the count", checkout(6, 4, 4, stuck(8, 2, 6)), true},
		{"the earlier revision serves its share, the stuck revision the rest", checkout(6, 4, 4, stuck(8, 3, 5)), true},
		{"the earlier revision's new replicas not yet available", checkout(6, 4, 4, stuck(8, 3, 3)), false},
		{"the controller has not sized the replica sets yet", checkout(6, 4, 4, stuck(5, 2, 3)), false},
		{"the new count not observed yet", checkout(6, 4, 3, stuck(8, 2, 6)), false},
		{"spec.replicas changed since the step", checkout(5, 5, 5, stuck(8, 2, 6)), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := &Kubernetes{Reader: fake.NewClientset(c.d)}
			done, seen, err := k.check(context.Background(), remediation.VerifyInput{StepRef: workloadStep(remediation.ActionScale, remediation.KindDeployment, scaleTo(6))})
			if err != nil || done != c.want {
				t.Errorf("done %t (%s), err %v; want done %t and no error", done, seen, err, c.want)
			}
			if !strings.Contains(seen, "stuck") {
				t.Errorf("seen %q does not mention the stuck rollout", seen)
			}
		})
	}

	// Through the activity: the scale verifies, saying what it saw.
	kc := fake.NewClientset(checkout(6, 4, 4, stuck(8, 2, 6)))
	res, err := verify(t, kc, remediation.VerifyInput{StepRef: workloadStep(remediation.ActionScale, remediation.KindDeployment, scaleTo(6)), Timeout: time.Second})
	if err != nil || !strings.Contains(res.Observed, "scale to 6") {
		t.Errorf("verify: %+v %v, want the scale verified", res, err)
	}
}

// Without a rollout in progress, a scale is verified when exactly the count
// exists and serves: a scale down waits for the surplus to go.
func TestVerifyScaleOfOneRevision(t *testing.T) {
	for _, c := range []struct {
		name   string
		status appsv1.DeploymentStatus
		want   bool
	}{
		{"scaled up, serving", appsv1.DeploymentStatus{Replicas: 6, UpdatedReplicas: 6, AvailableReplicas: 6}, true},
		{"scaled up, new replicas starting", appsv1.DeploymentStatus{Replicas: 6, UpdatedReplicas: 6, AvailableReplicas: 4}, false},
		{"scale down not finished", appsv1.DeploymentStatus{Replicas: 8, UpdatedReplicas: 8, AvailableReplicas: 8}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := &Kubernetes{Reader: fake.NewClientset(checkout(6, 2, 2, c.status))}
			done, seen, err := k.check(context.Background(), remediation.VerifyInput{StepRef: workloadStep(remediation.ActionScale, remediation.KindDeployment, scaleTo(6))})
			if err != nil || done != c.want {
				t.Errorf("done %t (%s), err %v; want done %t", done, seen, err, c.want)
			}
		})
	}
}

// A StatefulSet's scale follows the same rule: during a rollout its earlier
// revision's replicas must be ready, the rollout's need not be.
func TestVerifyScaleOfAStatefulSet(t *testing.T) {
	six := int32(6)
	sts := func(status appsv1.StatefulSetStatus) *appsv1.StatefulSet {
		status.ObservedGeneration = 3
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop", Generation: 3},
			Spec:       appsv1.StatefulSetSpec{Replicas: &six},
			Status:     status,
		}
	}
	for _, c := range []struct {
		name   string
		status appsv1.StatefulSetStatus
		want   bool
	}{
		{"one revision, all ready", appsv1.StatefulSetStatus{Replicas: 6, ReadyReplicas: 6, UpdatedReplicas: 6, CurrentRevision: "r1", UpdateRevision: "r1"}, true},
		{"one revision, scale down not finished", appsv1.StatefulSetStatus{Replicas: 7, ReadyReplicas: 7, UpdatedReplicas: 7, CurrentRevision: "r1", UpdateRevision: "r1"}, false},
		{"rollout stuck, earlier revision ready", appsv1.StatefulSetStatus{Replicas: 6, ReadyReplicas: 5, UpdatedReplicas: 1, CurrentRevision: "r1", UpdateRevision: "r2"}, true},
		{"rollout stuck, new replicas not created", appsv1.StatefulSetStatus{Replicas: 4, ReadyReplicas: 3, UpdatedReplicas: 1, CurrentRevision: "r1", UpdateRevision: "r2"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := &Kubernetes{Reader: fake.NewClientset(sts(c.status))}
			done, seen, err := k.check(context.Background(), remediation.VerifyInput{StepRef: workloadStep(remediation.ActionScale, remediation.KindStatefulSet, scaleTo(6))})
			if err != nil || done != c.want {
				t.Errorf("done %t (%s), err %v; want done %t", done, seen, err, c.want)
			}
		})
	}
}
