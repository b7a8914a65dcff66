package activities

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"go.temporal.io/sdk/activity"

	"github.com/reins-dev/reins/remediation"
)

// DefaultVerifyTimeout bounds Verify when the input sets no timeout.
const DefaultVerifyTimeout = 5 * time.Minute

// Verify waits, heartbeating, until the step's effect is observed through the
// worker's read identity: a rollout complete (every replica updated and
// available), a scale's replicas running (see scaleVerified), a node's
// schedulability, a pod quarantined or gone. An attempt waits until the
// earliest of in.Deadline, its start plus in.Timeout and its context's
// deadline. It fails, non-retryably, when in.Deadline or in.Timeout passes
// (at once when in.Deadline has passed before it starts) or when the rollout
// the step started reports that it cannot progress.
func (k *Kubernetes) Verify(ctx context.Context, in remediation.VerifyInput) (remediation.VerifyResult, error) {
	if in.DryRun {
		return remediation.VerifyResult{Observed: "dry run: nothing changed, nothing to verify"}, nil
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = DefaultVerifyTimeout
	}
	now := time.Now()
	if !in.Deadline.IsZero() && !now.Before(in.Deadline) {
		return remediation.VerifyResult{}, final(remediation.ErrVerification, "%s was not verified by %s, the step's verification deadline (this attempt started %s after it)",
			in.Step.Target, in.Deadline.UTC().Format(time.RFC3339), now.Sub(in.Deadline).Round(time.Millisecond))
	}
	deadline := now.Add(timeout)
	expired := fmt.Sprintf("did not converge within %s", timeout)
	if !in.Deadline.IsZero() && in.Deadline.Before(deadline) {
		deadline = in.Deadline
		expired = "was not verified by " + in.Deadline.UTC().Format(time.RFC3339) + ", the step's verification deadline"
	}
	// The context's deadline needs no timer of its own: ctx.Done ends the
	// attempt then, retryably, and a retry still waits only until in.Deadline.
	tick := time.NewTicker(k.pollInterval())
	defer tick.Stop()
	// One last look at the deadline, however it falls between two ticks.
	last := time.NewTimer(time.Until(deadline))
	defer last.Stop()
	for {
		done, observed, err := k.check(ctx, in)
		if err != nil {
			return remediation.VerifyResult{}, err
		}
		if done {
			return remediation.VerifyResult{Observed: observed}, nil
		}
		activity.RecordHeartbeat(ctx, observed)
		if !time.Now().Before(deadline) {
			return remediation.VerifyResult{}, final(remediation.ErrVerification, "%s %s: %s", in.Step.Target, expired, observed)
		}
		select {
		case <-ctx.Done():
			return remediation.VerifyResult{}, fmt.Errorf("verify %s: %w (last seen: %s)", in.Step.Target, ctx.Err(), observed)
		case <-tick.C:
		case <-last.C:
		}
	}
}

// check looks once; it returns whether the step's effect is complete and what it saw.
func (k *Kubernetes) check(ctx context.Context, in remediation.VerifyInput) (bool, string, error) {
	t := in.Step.Target
	get := metav1.GetOptions{}
	switch in.Step.Action {
	case remediation.ActionScale:
		if in.Step.Params.Replicas == nil {
			return false, "", final(remediation.ErrInvalid, "%s on %s: params.replicas is missing; set the replica count the step scales to", in.Step.Action, t)
		}
		want := *in.Step.Params.Replicas
		switch t.Kind {
		case remediation.KindDeployment:
			d, err := k.Reader.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, get)
			if err != nil {
				return false, "", kubeError("read "+t.String(), err)
			}
			done, seen := deploymentScaled(d, want)
			return done, seen, nil
		case remediation.KindStatefulSet:
			s, err := k.Reader.AppsV1().StatefulSets(t.Namespace).Get(ctx, t.Name, get)
			if err != nil {
				return false, "", kubeError("read "+t.String(), err)
			}
			done, seen := statefulSetScaled(s, want)
			return done, seen, nil
		}
	case remediation.ActionSetImage, remediation.ActionRolloutRestart:
		switch t.Kind {
		case remediation.KindDeployment:
			d, err := k.Reader.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, get)
			if err != nil {
				return false, "", kubeError("read "+t.String(), err)
			}
			return deploymentDone(d)
		case remediation.KindStatefulSet:
			s, err := k.Reader.AppsV1().StatefulSets(t.Namespace).Get(ctx, t.Name, get)
			if err != nil {
				return false, "", kubeError("read "+t.String(), err)
			}
			return statefulSetDone(s)
		case remediation.KindDaemonSet:
			d, err := k.Reader.AppsV1().DaemonSets(t.Namespace).Get(ctx, t.Name, get)
			if err != nil {
				return false, "", kubeError("read "+t.String(), err)
			}
			return daemonSetDone(d)
		}
	case remediation.ActionCordon, remediation.ActionUncordon:
		n, err := k.Reader.CoreV1().Nodes().Get(ctx, t.Name, get)
		if err != nil {
			return false, "", kubeError("read "+t.String(), err)
		}
		want := in.Step.Action == remediation.ActionCordon
		return n.Spec.Unschedulable == want, fmt.Sprintf("node unschedulable=%t", n.Spec.Unschedulable), nil
	case remediation.ActionQuarantinePod:
		p, err := k.Reader.CoreV1().Pods(t.Namespace).Get(ctx, t.Name, get)
		if err != nil {
			return false, "", kubeError("read "+t.String(), err)
		}
		np, npErr := k.Reader.NetworkingV1().NetworkPolicies(t.Namespace).Get(ctx, quarantinePolicyName(t.Name), get)
		if npErr != nil && !apierrors.IsNotFound(npErr) {
			return false, "", kubeError("read quarantine NetworkPolicy of "+t.String(), npErr)
		}
		// The policy must select this pod's UID: one left by an earlier pod
		// of the same name selects that pod's.
		labelled := p.Labels[remediation.QuarantineLabel] == string(p.UID)
		isolated := npErr == nil && isolates(np, string(p.UID))
		return labelled && isolated, fmt.Sprintf("pod labelled=%t, deny-all NetworkPolicy isolating its uid %s=%t", labelled, p.UID, isolated), nil
	case remediation.ActionDeletePod:
		p, err := k.Reader.CoreV1().Pods(t.Namespace).Get(ctx, t.Name, get)
		if apierrors.IsNotFound(err) {
			return true, "pod gone", nil
		}
		if err != nil {
			return false, "", kubeError("read "+t.String(), err)
		}
		if string(p.UID) != in.Before.UID {
			return true, "pod replaced by a new one (uid " + string(p.UID) + ")", nil
		}
		return false, "pod still terminating", nil
	}
	return false, "", final(remediation.ErrInvalid, "%s on %s: %v", in.Step.Action, t.Kind, errUnsupported)
}

// replicasOf is a workload's spec.replicas, which the API server defaults to 1.
func replicasOf(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}

// deploymentDone reports whether the Deployment's rollout is complete. Its
// status, the ProgressDeadlineExceeded condition included, describes the
// spec the controller last observed: until ObservedGeneration reaches
// Generation it may be left over from an earlier rollout (such as the bad
// one a roll back of the image repairs), so it neither completes nor fails
// the step.
func deploymentDone(d *appsv1.Deployment) (bool, string, error) {
	want := replicasOf(d.Spec.Replicas)
	s := d.Status
	seen := fmt.Sprintf("rollout: %d/%d updated, %d available, %d total (generation %d, observed %d)",
		s.UpdatedReplicas, want, s.AvailableReplicas, s.Replicas, d.Generation, s.ObservedGeneration)
	if s.ObservedGeneration < d.Generation {
		return false, seen + "; the controller has not observed the change yet", nil
	}
	if c := progressDeadlineExceeded(d); c != nil {
		return false, seen, final(remediation.ErrVerification, "rollout of %s/%s is stuck: %s (%s)", d.Namespace, d.Name, c.Message, seen)
	}
	done := s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
	return done, seen, nil
}

// progressDeadlineExceeded returns the Deployment's Progressing condition
// when it says the rollout cannot progress, nil otherwise.
func progressDeadlineExceeded(d *appsv1.Deployment) *appsv1.DeploymentCondition {
	for i, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// deploymentScaled reports whether a Deployment runs the want replicas a
// scale step set; see scaleVerified. A rollout in progress, even a stuck
// one (ProgressDeadlineExceeded), neither completes nor fails a scale: it is
// reported in what was seen.
func deploymentScaled(d *appsv1.Deployment, want int32) (bool, string) {
	s := d.Status
	seen := fmt.Sprintf("scale to %d: spec %d, %d available, %d total, %d of the current revision (generation %d, observed %d)",
		want, replicasOf(d.Spec.Replicas), s.AvailableReplicas, s.Replicas, s.UpdatedReplicas, d.Generation, s.ObservedGeneration)
	if c := progressDeadlineExceeded(d); c != nil {
		seen += "; the rollout in progress is stuck: " + c.Message
	}
	if replicasOf(d.Spec.Replicas) != want {
		return false, seen + "; spec.replicas is no longer the step's count (changed since, by an autoscaler or a person?)"
	}
	if s.ObservedGeneration < d.Generation {
		return false, seen + "; the controller has not observed the new count yet"
	}
	return scaleVerified(want, s.Replicas, s.UpdatedReplicas, s.AvailableReplicas, s.UpdatedReplicas < s.Replicas), seen
}

// statefulSetScaled reports whether a StatefulSet runs the want replicas a
// scale step set; see scaleVerified. Ready replicas serve.
func statefulSetScaled(st *appsv1.StatefulSet, want int32) (bool, string) {
	s := st.Status
	rolling := s.UpdateRevision != "" && s.CurrentRevision != s.UpdateRevision
	seen := fmt.Sprintf("scale to %d: spec %d, %d ready, %d total, %d of revision %s (generation %d, observed %d)",
		want, replicasOf(st.Spec.Replicas), s.ReadyReplicas, s.Replicas, s.UpdatedReplicas, s.UpdateRevision, st.Generation, s.ObservedGeneration)
	if replicasOf(st.Spec.Replicas) != want {
		return false, seen + "; spec.replicas is no longer the step's count (changed since, by an autoscaler or a person?)"
	}
	if s.ObservedGeneration < st.Generation {
		return false, seen + "; the controller has not observed the new count yet"
	}
	return scaleVerified(want, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, rolling), seen
}

// scaleVerified is what verifies a scale to want, once the controller has
// observed the spec carrying that count. total replicas exist, updated of
// them are of the current revision, serving are available (ready).
//
// With every replica of one revision, exactly want exist and all serve: a
// scale up serves, a scale down has finished. While a rollout is in
// progress (replicas of several revisions, such as a rollout stuck on a bad
// image), the controller spreads the count over the revisions and keeps
// surge replicas, so at least want must exist, and either want serve or at
// least as many serve as there are replicas of earlier revisions: the
// revision that served before the rollout runs its share of the new count,
// and only the rollout's own replicas may be unavailable. Whether the
// rollout completes is the business of the step that started it, not of
// the scale.
func scaleVerified(want, total, updated, serving int32, rolling bool) bool {
	if !rolling {
		return total == want && serving == want
	}
	return total >= want && (serving >= want || serving >= total-updated)
}

func statefulSetDone(st *appsv1.StatefulSet) (bool, string, error) {
	want := replicasOf(st.Spec.Replicas)
	s := st.Status
	seen := fmt.Sprintf("rollout: %d/%d updated, %d ready, %d total, revision %s→%s", s.UpdatedReplicas, want, s.ReadyReplicas, s.Replicas, s.CurrentRevision, s.UpdateRevision)
	done := s.ObservedGeneration >= st.Generation && s.Replicas == want && s.ReadyReplicas == want && s.UpdatedReplicas == want &&
		(s.UpdateRevision == "" || s.CurrentRevision == s.UpdateRevision)
	return done, seen, nil
}

func daemonSetDone(d *appsv1.DaemonSet) (bool, string, error) {
	s := d.Status
	seen := fmt.Sprintf("rollout: %d/%d updated, %d available", s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberAvailable)
	done := s.ObservedGeneration >= d.Generation && s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberAvailable == s.DesiredNumberScheduled
	return done, seen, nil
}
