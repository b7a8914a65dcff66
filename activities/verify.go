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
// available), a node's schedulability, a pod quarantined or gone. It fails,
// non-retryably, when the deadline passes or the rollout reports that it
// cannot progress.
func (k *Kubernetes) Verify(ctx context.Context, in remediation.VerifyInput) (remediation.VerifyResult, error) {
	if in.DryRun {
		return remediation.VerifyResult{Observed: "dry run: nothing changed, nothing to verify"}, nil
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = DefaultVerifyTimeout
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(k.pollInterval())
	defer tick.Stop()
	last := "not observed yet"
	for {
		done, observed, err := k.check(ctx, in)
		if err != nil {
			return remediation.VerifyResult{}, err
		}
		if done {
			return remediation.VerifyResult{Observed: observed}, nil
		}
		last = observed
		activity.RecordHeartbeat(ctx, observed)
		if time.Now().After(deadline) {
			return remediation.VerifyResult{}, final(remediation.ErrVerification, "%s did not converge within %s: %s", in.Step.Target, timeout, last)
		}
		select {
		case <-ctx.Done():
			return remediation.VerifyResult{}, fmt.Errorf("verify %s: %w (last seen: %s)", in.Step.Target, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// check looks once; it returns whether the step's effect is complete and what it saw.
func (k *Kubernetes) check(ctx context.Context, in remediation.VerifyInput) (bool, string, error) {
	t := in.Step.Target
	get := metav1.GetOptions{}
	switch in.Step.Action {
	case remediation.ActionScale, remediation.ActionSetImage, remediation.ActionRolloutRestart:
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

func deploymentDone(d *appsv1.Deployment) (bool, string, error) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	seen := fmt.Sprintf("rollout: %d/%d updated, %d available, %d total (generation %d, observed %d)",
		s.UpdatedReplicas, want, s.AvailableReplicas, s.Replicas, d.Generation, s.ObservedGeneration)
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return false, seen, final(remediation.ErrVerification, "rollout of %s/%s is stuck: %s (%s)", d.Namespace, d.Name, c.Message, seen)
		}
	}
	done := s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
	return done, seen, nil
}

func statefulSetDone(st *appsv1.StatefulSet) (bool, string, error) {
	want := int32(1)
	if st.Spec.Replicas != nil {
		want = *st.Spec.Replicas
	}
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
