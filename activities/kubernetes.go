package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"go.temporal.io/sdk/activity"

	"github.com/reins-dev/reins/remediation"
)

// ClientSource gives the Kubernetes client a step writes with.
type ClientSource interface {
	// ClientFor returns a client allowed to change ref's target, and a release
	// function that must be called when the step ends, success or not (it
	// revokes whatever credential the client holds).
	ClientFor(ctx context.Context, ref remediation.StepRef) (kubernetes.Interface, func(context.Context) error, error)
}

// StaticClient is a ClientSource that writes with one fixed identity, the
// worker's own (a kubeconfig). Production workers use Vault-minted,
// per-step credentials instead.
type StaticClient struct {
	Client kubernetes.Interface
}

var _ ClientSource = StaticClient{}

// ClientFor returns the fixed client; release does nothing.
func (s StaticClient) ClientFor(context.Context, remediation.StepRef) (kubernetes.Interface, func(context.Context) error, error) {
	return s.Client, func(context.Context) error { return nil }, nil
}

// Kubernetes holds the Kubernetes activities: observe a target, act on it,
// verify the result, compensate.
type Kubernetes struct {
	// Reader reads targets with the worker's own (read-only) identity.
	Reader kubernetes.Interface
	// Writers give the identity each write uses.
	Writers ClientSource
	// PollInterval is how often Verify looks. Default 500ms.
	PollInterval time.Duration
	// Cluster names the cluster Reader and Writers reach (config
	// cluster); a step whose target names another cluster is refused.
	Cluster string
}

func (k *Kubernetes) pollInterval() time.Duration {
	if k.PollInterval <= 0 {
		return 500 * time.Millisecond
	}
	return k.PollInterval
}

// otherCluster refuses a step whose target names a cluster other than the
// one this worker reaches (worker): a final error naming both; nil when the
// target names no cluster or this one.
func otherCluster(worker string, t remediation.Target) error {
	switch {
	case t.Cluster == "" || t.Cluster == worker:
		return nil
	case worker == "":
		return final(remediation.ErrInvalid, "target.cluster is %q, but this worker's cluster has no name: set cluster in its config, or leave target.cluster out", t.Cluster)
	}
	return final(remediation.ErrInvalid, "target.cluster is %q, but this worker acts on cluster %q: run the plan where a worker for %q polls", t.Cluster, worker, t.Cluster)
}

// Observe captures the target's current state.
func (k *Kubernetes) Observe(ctx context.Context, in remediation.ObserveInput) (remediation.ObserveResult, error) {
	if err := otherCluster(k.Cluster, in.Step.Target); err != nil {
		return remediation.ObserveResult{}, err
	}
	snap, err := observe(ctx, k.Reader, in.Step)
	if err != nil {
		return remediation.ObserveResult{}, err
	}
	if !snap.Exists {
		return remediation.ObserveResult{}, final(remediation.ErrNotFound, "%s not found; check the plan's target", in.Step.Target)
	}
	return remediation.ObserveResult{Snapshot: snap}, nil
}

// observe reads the step's target; a missing object is a Snapshot with Exists false.
func observe(ctx context.Context, c kubernetes.Interface, step remediation.Step) (remediation.Snapshot, error) {
	t := step.Target
	var (
		snap remediation.Snapshot
		err  error
	)
	switch t.Kind {
	case remediation.KindDeployment:
		var d *appsv1.Deployment
		if d, err = c.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{}); err == nil {
			snap = deploymentSnapshot(d)
			snap.PreviousImages, err = previousImages(ctx, c, d)
		}
	case remediation.KindStatefulSet:
		var s *appsv1.StatefulSet
		if s, err = c.AppsV1().StatefulSets(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{}); err == nil {
			snap = podTemplateSnapshot(s.ObjectMeta, s.Spec.Template, s.Spec.Replicas)
		}
	case remediation.KindDaemonSet:
		var d *appsv1.DaemonSet
		if d, err = c.AppsV1().DaemonSets(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{}); err == nil {
			snap = podTemplateSnapshot(d.ObjectMeta, d.Spec.Template, nil)
		}
	case remediation.KindNode:
		var n *corev1.Node
		if n, err = c.CoreV1().Nodes().Get(ctx, t.Name, metav1.GetOptions{}); err == nil {
			snap = nodeSnapshot(n)
		}
	case remediation.KindPod:
		var p *corev1.Pod
		if p, err = c.CoreV1().Pods(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{}); err == nil {
			snap = podSnapshot(p)
			// A policy of the pod's name that isolates another pod (the
			// earlier namesake it was made for) does not quarantine this one.
			np, npErr := c.NetworkingV1().NetworkPolicies(t.Namespace).Get(ctx, quarantinePolicyName(t.Name), metav1.GetOptions{})
			switch {
			case npErr == nil:
				snap.QuarantinePolicy = isolates(np, string(p.UID))
			case !apierrors.IsNotFound(npErr):
				err = npErr
			}
		}
	default:
		return snap, final(remediation.ErrInvalid, "%s: %v: %s", step.Action, errUnsupported, t.Kind)
	}
	if apierrors.IsNotFound(err) {
		return remediation.Snapshot{Exists: false}, nil
	}
	if err != nil {
		return snap, kubeError("read "+t.String(), err)
	}
	return snap, nil
}

func deploymentSnapshot(d *appsv1.Deployment) remediation.Snapshot {
	return podTemplateSnapshot(d.ObjectMeta, d.Spec.Template, d.Spec.Replicas)
}

func podTemplateSnapshot(meta metav1.ObjectMeta, tmpl corev1.PodTemplateSpec, replicas *int32) remediation.Snapshot {
	snap := remediation.Snapshot{
		Exists:      true,
		UID:         string(meta.UID),
		Replicas:    copyInt32(replicas),
		RestartedAt: tmpl.Annotations[remediation.RestartedAtAnnotation],
		Labels:      meta.Labels,
	}
	for _, c := range tmpl.Spec.Containers {
		snap.Images = append(snap.Images, remediation.ContainerImage{Container: c.Name, Image: c.Image})
	}
	return snap
}

func nodeSnapshot(n *corev1.Node) remediation.Snapshot {
	u := n.Spec.Unschedulable
	return remediation.Snapshot{Exists: true, UID: string(n.UID), Unschedulable: &u, Labels: n.Labels}
}

func podSnapshot(p *corev1.Pod) remediation.Snapshot {
	return remediation.Snapshot{
		Exists:     true,
		UID:        string(p.UID),
		Quarantine: p.Labels[remediation.QuarantineLabel],
		Phase:      string(p.Status.Phase),
		Labels:     p.Labels,
	}
}

// previousImages lists the images of a Deployment's older ReplicaSets, newest first.
func previousImages(ctx context.Context, c kubernetes.Interface, d *appsv1.Deployment) ([]string, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector of %s/%s: %w", d.Namespace, d.Name, err)
	}
	list, err := c.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	type rev struct {
		n      int64
		images []string
	}
	var revs []rev
	current := d.Annotations["deployment.kubernetes.io/revision"]
	for _, rs := range list.Items {
		if !metav1.IsControlledBy(&rs, d) || rs.Annotations["deployment.kubernetes.io/revision"] == current {
			continue
		}
		n, _ := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64)
		var imgs []string
		for _, ctr := range rs.Spec.Template.Spec.Containers {
			imgs = append(imgs, ctr.Image)
		}
		revs = append(revs, rev{n, imgs})
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i].n > revs[j].n })
	var out []string
	for _, r := range revs {
		for _, img := range r.images {
			if !slices.Contains(out, img) {
				out = append(out, img)
			}
		}
	}
	return out, nil
}

func copyInt32(p *int32) *int32 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Execute acts on the step's target with the step's credential. The target
// is read with the worker's own identity; the credential (minted for this
// step alone, see VaultCredentials) is asked for only when there is something
// to do and released (revoked) before Execute returns, success or not. Every
// write is set-to-value (merge or strategic-merge patch, field manager
// "reins") and stamps the reins annotations, so a retry writes the same thing
// again.
func (k *Kubernetes) Execute(ctx context.Context, in remediation.ExecuteInput) (res remediation.ExecuteResult, err error) {
	if err := otherCluster(k.Cluster, in.Step.Target); err != nil {
		return remediation.ExecuteResult{}, err
	}
	current, err := observe(ctx, k.Reader, in.Step)
	if err != nil {
		return remediation.ExecuteResult{}, err
	}
	if err := sameObject(in.Step, in.Before, current); err != nil {
		// The pod is gone, or its controller (a StatefulSet) has already
		// replaced it with a namesake: on a retry, the earlier attempt's
		// delete did its work; on a first attempt, someone else's did, and
		// reins changed nothing.
		if in.Step.Action == remediation.ActionDeletePod {
			retry := activity.GetInfo(ctx).Attempt > 1 || activity.HasHeartbeatDetails(ctx)
			activity.GetLogger(ctx).Info("pod already deleted", "remediation", in.Remediation, "step", in.Index, "target", in.Step.Target.String(),
				"uid", in.Before.UID, "namesake_uid", current.UID, "by_an_earlier_attempt", retry)
			return remediation.ExecuteResult{Changed: retry, After: remediation.Snapshot{}}, nil
		}
		return remediation.ExecuteResult{}, err
	}
	// An abort requested while this attempt was starting reaches it through a
	// heartbeat's response, which cancels ctx: ask once more before the
	// first write, so that such an abort stops the write from starting.
	// The detail tells a retry that this attempt went on to write.
	activity.RecordHeartbeat(ctx, "writing")
	if err := ctx.Err(); err != nil {
		return remediation.ExecuteResult{}, fmt.Errorf("%s not started: %w", in.Step.Describe(), err)
	}
	cred := &stepCredential{source: k.Writers, ref: in.StepRef}
	defer func() {
		// Deferred: a panic, which the SDK recovers from and fails the
		// attempt with, must not leave the credential alive either.
		if lease := cred.release(ctx); err == nil {
			res.Lease = lease
		} else {
			err = withLease(err, lease)
		}
	}()
	if res, err = k.execute(ctx, cred, in); err != nil {
		return remediation.ExecuteResult{}, err
	}
	return res, nil
}

func (k *Kubernetes) execute(ctx context.Context, cred *stepCredential, in remediation.ExecuteInput) (remediation.ExecuteResult, error) {
	w := k.writer(ctx, cred, in.StepRef)
	after, changed, err := w.apply(ctx, in.Before, in.At)
	if err != nil {
		return remediation.ExecuteResult{}, err
	}
	if !in.DryRun {
		msg := fmt.Sprintf("%s (remediation %s step %d, requested by %s): %s", in.Step.Describe(), in.Remediation, in.Index, in.Requester, in.Step.Justification)
		if err := w.event(ctx, in.Before.UID, EventReasonApplied, msg); err != nil {
			return remediation.ExecuteResult{}, err
		}
	}
	activity.GetLogger(ctx).Info("step applied", "remediation", in.Remediation, "step", in.Index, "target", in.Step.Target.String(), "changed", changed, "dry_run", in.DryRun)
	return remediation.ExecuteResult{Changed: changed, After: after}, nil
}

// stepCredential is the credential one step (or compensation) writes with,
// minted on the first write, so that nothing is minted when there is nothing
// to write (an undo that finds the target as it was, a step refused before
// it writes).
type stepCredential struct {
	source    ClientSource
	ref       remediation.StepRef
	client    kubernetes.Interface
	releaseFn func(context.Context) error
}

// get returns the client, minting the credential on first use. Its error is
// returned as it is: a final one must stay final.
func (s *stepCredential) get(ctx context.Context) (kubernetes.Interface, error) {
	if s.client != nil {
		return s.client, nil
	}
	c, release, err := s.source.ClientFor(ctx, s.ref)
	if err != nil {
		return nil, err
	}
	s.client, s.releaseFn = c, release
	return c, nil
}

// release ends the credential, if one was minted, and describes its lease
// (nil when there is none). A revocation that failed is logged and reported
// as not revoked; the credential source keeps retrying it.
func (s *stepCredential) release(ctx context.Context) *remediation.LeaseInfo {
	if s.client == nil {
		return nil
	}
	err := s.releaseFn(context.WithoutCancel(ctx))
	lease := leaseOf(s.client)
	logger := activity.GetLogger(ctx)
	switch {
	case err != nil:
		logger.Error("step credential not revoked", "remediation", s.ref.Remediation, "step", s.ref.Index, "lease", leaseID(lease), "error", err)
	case lease != nil:
		logger.Info("step credential revoked", "remediation", s.ref.Remediation, "step", s.ref.Index, "lease", lease.LeaseID, "role", lease.Role)
	}
	return lease
}

func leaseID(l *remediation.LeaseInfo) string {
	if l == nil {
		return ""
	}
	return l.LeaseID
}

// sameObject refuses to act when the target is not the object observed before.
func sameObject(step remediation.Step, before, current remediation.Snapshot) error {
	if !current.Exists {
		return final(remediation.ErrNotFound, "%s no longer exists", step.Target)
	}
	if before.UID != "" && current.UID != before.UID {
		return final(remediation.ErrTargetChanged, "%s was replaced (uid %s, observed %s); refusing to act on a different object", step.Target, current.UID, before.UID)
	}
	return nil
}

// Compensate sets the target back to its state before the step, with a
// credential of its own (minted and revoked like Execute's). A target that
// is gone needs no undo, and neither does one replaced by a namesake: the
// object the step acted on is gone, and the namesake is never touched.
func (k *Kubernetes) Compensate(ctx context.Context, in remediation.CompensateInput) (res remediation.CompensateResult, err error) {
	if err := otherCluster(k.Cluster, in.Step.Target); err != nil {
		return remediation.CompensateResult{}, err
	}
	if in.Step.Action.Irreversible() {
		return remediation.CompensateResult{}, final(remediation.ErrInvalid, "%s is irreversible and has no compensation", in.Step.Action)
	}
	current, err := observe(ctx, k.Reader, in.Step)
	if err != nil {
		return remediation.CompensateResult{}, err
	}
	if !current.Exists {
		return remediation.CompensateResult{Summary: in.Step.Target.String() + " is gone; nothing to undo"}, nil
	}
	if in.Before.UID != "" && current.UID != in.Before.UID {
		activity.GetLogger(ctx).Info("target replaced, nothing to undo", "remediation", in.Remediation, "step", in.Index, "target", in.Step.Target.String(), "uid", in.Before.UID, "namesake_uid", current.UID)
		return remediation.CompensateResult{Summary: fmt.Sprintf("%s (uid %s) is gone, replaced by a namesake (uid %s); nothing to undo, the namesake is left as it is", in.Step.Target, in.Before.UID, current.UID)}, nil
	}
	cred := &stepCredential{source: k.Writers, ref: in.StepRef}
	defer func() {
		// Deferred, like Execute's.
		if lease := cred.release(ctx); err == nil {
			res.Lease = lease
		} else {
			err = withLease(err, lease)
		}
	}()
	if res, err = k.compensate(ctx, cred, in, current); err != nil {
		return remediation.CompensateResult{}, err
	}
	return res, nil
}

func (k *Kubernetes) compensate(ctx context.Context, cred *stepCredential, in remediation.CompensateInput, current remediation.Snapshot) (remediation.CompensateResult, error) {
	w := k.writer(ctx, cred, in.StepRef)
	changed, err := w.restore(ctx, in.Before, current)
	if err != nil {
		return remediation.CompensateResult{}, err
	}
	summary := "already as before; nothing to undo"
	if changed {
		summary = remediation.DescribeCompensation(in.Step, in.Before)
		if !in.DryRun {
			msg := fmt.Sprintf("undo of %s (remediation %s step %d): %s", in.Step.Describe(), in.Remediation, in.Index, summary)
			if err := w.event(ctx, in.Before.UID, EventReasonCompensated, msg); err != nil {
				return remediation.CompensateResult{}, err
			}
		}
	}
	activity.GetLogger(ctx).Info("step compensated", "remediation", in.Remediation, "step", in.Index, "target", in.Step.Target.String(), "changed", changed)
	return remediation.CompensateResult{Changed: changed, Summary: summary}, nil
}

// writer makes one step's writes.
type writer struct {
	cred *stepCredential
	// reader reads, with the worker's own identity, what a write depends on.
	reader kubernetes.Interface
	ref    remediation.StepRef
	// run is the workflow run writing (a remediation's ID is reused when its
	// incident fires again; its run ID is not).
	run    string
	dryRun bool
}

func (k *Kubernetes) writer(ctx context.Context, cred *stepCredential, ref remediation.StepRef) writer {
	return writer{cred: cred, reader: k.Reader, ref: ref, run: activity.GetInfo(ctx).WorkflowExecution.RunID, dryRun: ref.DryRun}
}

func (w writer) patchOptions() metav1.PatchOptions {
	o := metav1.PatchOptions{FieldManager: remediation.FieldManager}
	if w.dryRun {
		o.DryRun = []string{metav1.DryRunAll}
	}
	return o
}

func (w writer) createOptions() metav1.CreateOptions {
	o := metav1.CreateOptions{FieldManager: remediation.FieldManager}
	if w.dryRun {
		o.DryRun = []string{metav1.DryRunAll}
	}
	return o
}

func (w writer) annotations() map[string]any {
	out := map[string]any{}
	for k, v := range stepAnnotations(w.ref) {
		out[k] = v
	}
	return out
}

// apply makes the step's change and returns the state after it.
func (w writer) apply(ctx context.Context, before remediation.Snapshot, at time.Time) (remediation.Snapshot, bool, error) {
	s := w.ref.Step
	meta := map[string]any{"annotations": w.annotations()}
	switch s.Action {
	case remediation.ActionScale:
		want := *s.Params.Replicas
		changed := before.Replicas == nil || *before.Replicas != want
		patch := map[string]any{"metadata": meta, "spec": map[string]any{"replicas": want}}
		after, err := w.patchWorkload(ctx, types.MergePatchType, patch)
		return after, changed, err
	case remediation.ActionSetImage:
		old, ok := before.Image(s.Params.Container)
		if !ok {
			return remediation.Snapshot{}, false, final(remediation.ErrInvalid, "%s has no container %q (containers: %s)", s.Target, s.Params.Container, containerNames(before))
		}
		patch := map[string]any{"metadata": meta, "spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": s.Params.Container, "image": s.Params.Image}}}}}}
		after, err := w.patchWorkload(ctx, types.StrategicMergePatchType, patch)
		return after, old != s.Params.Image, err
	case remediation.ActionRolloutRestart:
		stamp := at.UTC().Format(time.RFC3339)
		patch := map[string]any{"metadata": meta, "spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
			"annotations": map[string]any{remediation.RestartedAtAnnotation: stamp}}}}}
		after, err := w.patchWorkload(ctx, types.StrategicMergePatchType, patch)
		return after, before.RestartedAt != stamp, err
	case remediation.ActionCordon, remediation.ActionUncordon:
		want := s.Action == remediation.ActionCordon
		after, err := w.patchNode(ctx, map[string]any{"metadata": meta, "spec": map[string]any{"unschedulable": want}})
		return after, before.Unschedulable == nil || *before.Unschedulable != want, err
	case remediation.ActionQuarantinePod:
		return w.quarantine(ctx, before, meta)
	case remediation.ActionDeletePod:
		return w.deletePod(ctx, before)
	}
	return remediation.Snapshot{}, false, final(remediation.ErrInvalid, "%s: %v", s.Action, errUnsupported)
}

// restore sets the target back to before; it writes only what differs.
func (w writer) restore(ctx context.Context, before, current remediation.Snapshot) (bool, error) {
	s := w.ref.Step
	meta := map[string]any{"annotations": w.annotations()}
	switch s.Action {
	case remediation.ActionScale:
		if before.Replicas == nil || (current.Replicas != nil && *current.Replicas == *before.Replicas) {
			return false, nil
		}
		_, err := w.patchWorkload(ctx, types.MergePatchType, map[string]any{"metadata": meta, "spec": map[string]any{"replicas": *before.Replicas}})
		return err == nil, err
	case remediation.ActionSetImage:
		old, ok := before.Image(s.Params.Container)
		now, _ := current.Image(s.Params.Container)
		if !ok || now == old {
			return false, nil
		}
		_, err := w.patchWorkload(ctx, types.StrategicMergePatchType, map[string]any{"metadata": meta, "spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": s.Params.Container, "image": old}}}}}})
		return err == nil, err
	case remediation.ActionRolloutRestart:
		if current.RestartedAt == before.RestartedAt {
			return false, nil
		}
		var stamp any // nil removes the annotation
		if before.RestartedAt != "" {
			stamp = before.RestartedAt
		}
		_, err := w.patchWorkload(ctx, types.StrategicMergePatchType, map[string]any{"metadata": meta, "spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
			"annotations": map[string]any{remediation.RestartedAtAnnotation: stamp}}}}})
		return err == nil, err
	case remediation.ActionCordon, remediation.ActionUncordon:
		if before.Unschedulable == nil || (current.Unschedulable != nil && *current.Unschedulable == *before.Unschedulable) {
			return false, nil
		}
		_, err := w.patchNode(ctx, map[string]any{"metadata": meta, "spec": map[string]any{"unschedulable": *before.Unschedulable}})
		return err == nil, err
	case remediation.ActionQuarantinePod:
		changed := false
		if current.Quarantine != before.Quarantine {
			var label any // nil removes the label
			if before.Quarantine != "" {
				label = before.Quarantine
			}
			patch := map[string]any{"metadata": map[string]any{"annotations": w.annotations(), "labels": map[string]any{remediation.QuarantineLabel: label}}}
			if _, err := w.patchPod(ctx, patch); err != nil {
				return false, err
			}
			changed = true
		}
		if current.QuarantinePolicy && !before.QuarantinePolicy {
			c, err := w.cred.get(ctx)
			if err != nil {
				return changed, err
			}
			err = c.NetworkingV1().NetworkPolicies(s.Target.Namespace).Delete(ctx, quarantinePolicyName(s.Target.Name), w.deleteOptions(""))
			if err != nil && !apierrors.IsNotFound(err) {
				return changed, kubeError("delete quarantine NetworkPolicy of "+s.Target.String(), err)
			}
			changed = true
		}
		return changed, nil
	}
	return false, final(remediation.ErrInvalid, "%s has no compensation", s.Action)
}

func (w writer) deleteOptions(uid string) metav1.DeleteOptions {
	o := metav1.DeleteOptions{}
	if uid != "" {
		u := types.UID(uid)
		o.Preconditions = &metav1.Preconditions{UID: &u}
	}
	if w.dryRun {
		o.DryRun = []string{metav1.DryRunAll}
	}
	return o
}

func (w writer) patchWorkload(ctx context.Context, pt types.PatchType, patch map[string]any) (remediation.Snapshot, error) {
	t := w.ref.Step.Target
	data, err := json.Marshal(patch)
	if err != nil {
		return remediation.Snapshot{}, fmt.Errorf("encode patch: %w", err)
	}
	op := "patch " + t.String()
	c, err := w.cred.get(ctx)
	if err != nil {
		return remediation.Snapshot{}, err
	}
	switch t.Kind {
	case remediation.KindDeployment:
		d, err := c.AppsV1().Deployments(t.Namespace).Patch(ctx, t.Name, pt, data, w.patchOptions())
		if err != nil {
			return remediation.Snapshot{}, kubeError(op, err)
		}
		return deploymentSnapshot(d), nil
	case remediation.KindStatefulSet:
		s, err := c.AppsV1().StatefulSets(t.Namespace).Patch(ctx, t.Name, pt, data, w.patchOptions())
		if err != nil {
			return remediation.Snapshot{}, kubeError(op, err)
		}
		return podTemplateSnapshot(s.ObjectMeta, s.Spec.Template, s.Spec.Replicas), nil
	case remediation.KindDaemonSet:
		d, err := c.AppsV1().DaemonSets(t.Namespace).Patch(ctx, t.Name, pt, data, w.patchOptions())
		if err != nil {
			return remediation.Snapshot{}, kubeError(op, err)
		}
		return podTemplateSnapshot(d.ObjectMeta, d.Spec.Template, nil), nil
	}
	return remediation.Snapshot{}, final(remediation.ErrInvalid, "%s: %v: %s", w.ref.Step.Action, errUnsupported, t.Kind)
}

func (w writer) patchNode(ctx context.Context, patch map[string]any) (remediation.Snapshot, error) {
	data, err := json.Marshal(patch)
	if err != nil {
		return remediation.Snapshot{}, fmt.Errorf("encode patch: %w", err)
	}
	c, err := w.cred.get(ctx)
	if err != nil {
		return remediation.Snapshot{}, err
	}
	n, err := c.CoreV1().Nodes().Patch(ctx, w.ref.Step.Target.Name, types.MergePatchType, data, w.patchOptions())
	if err != nil {
		return remediation.Snapshot{}, kubeError("patch "+w.ref.Step.Target.String(), err)
	}
	return nodeSnapshot(n), nil
}

func (w writer) patchPod(ctx context.Context, patch map[string]any) (remediation.Snapshot, error) {
	t := w.ref.Step.Target
	data, err := json.Marshal(patch)
	if err != nil {
		return remediation.Snapshot{}, fmt.Errorf("encode patch: %w", err)
	}
	c, err := w.cred.get(ctx)
	if err != nil {
		return remediation.Snapshot{}, err
	}
	p, err := c.CoreV1().Pods(t.Namespace).Patch(ctx, t.Name, types.MergePatchType, data, w.patchOptions())
	if err != nil {
		return remediation.Snapshot{}, kubeError("patch "+t.String(), err)
	}
	return podSnapshot(p), nil
}

// quarantine labels the pod with its own UID and applies a deny-all
// NetworkPolicy selecting exactly that label, owned by the pod so that
// Kubernetes deletes it with the pod.
func (w writer) quarantine(ctx context.Context, before remediation.Snapshot, meta map[string]any) (remediation.Snapshot, bool, error) {
	t := w.ref.Step.Target
	value := before.UID
	meta["labels"] = map[string]any{remediation.QuarantineLabel: value}
	after, err := w.patchPod(ctx, map[string]any{"metadata": meta})
	if err != nil {
		return remediation.Snapshot{}, false, err
	}
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:            quarantinePolicyName(t.Name),
			Namespace:       t.Namespace,
			Labels:          map[string]string{"app.kubernetes.io/managed-by": "reins"},
			Annotations:     stepAnnotations(w.ref),
			OwnerReferences: []metav1.OwnerReference{podOwner(t.Name, value)},
		},
		Spec: quarantineSpec(value),
	}
	c, err := w.cred.get(ctx)
	if err != nil {
		return remediation.Snapshot{}, false, err
	}
	_, err = c.NetworkingV1().NetworkPolicies(t.Namespace).Create(ctx, np, w.createOptions())
	switch {
	case apierrors.IsAlreadyExists(err):
		if err := w.adoptQuarantinePolicy(ctx, c, value); err != nil {
			return remediation.Snapshot{}, false, err
		}
	case err != nil:
		return remediation.Snapshot{}, false, kubeError("create quarantine NetworkPolicy for "+t.String(), err)
	}
	after.QuarantinePolicy = true
	return after, before.Quarantine != value || !before.QuarantinePolicy, nil
}

// adoptQuarantinePolicy makes the pod's existing quarantine NetworkPolicy
// isolate the pod with the given UID and be owned by it alone. The policy may
// have been left by the quarantine of an earlier pod of the same name (a
// StatefulSet's), whose UID it selects, or written by this step's earlier
// attempt; one that already isolates the pod and is owned by it is left as it
// is. The patch carries the resourceVersion read, so a concurrent change
// fails it with a conflict, which is retried.
func (w writer) adoptQuarantinePolicy(ctx context.Context, c kubernetes.Interface, uid string) error {
	t := w.ref.Step.Target
	name := quarantinePolicyName(t.Name)
	np, err := w.reader.NetworkingV1().NetworkPolicies(t.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		// Deleted since Create found it: the retry creates it.
		return fmt.Errorf("quarantine NetworkPolicy %s/%s was deleted while being adopted for %s; retrying", t.Namespace, name, t)
	case err != nil:
		return kubeError("read quarantine NetworkPolicy of "+t.String(), err)
	case np.DeletionTimestamp != nil:
		return fmt.Errorf("quarantine NetworkPolicy %s/%s is being deleted; retrying until it is gone and can be created for %s", t.Namespace, name, t)
	case isolates(np, uid) && ownedBy(np, uid):
		return nil
	}
	labels := map[string]any{remediation.QuarantineLabel: uid}
	for k := range np.Spec.PodSelector.MatchLabels {
		if k != remediation.QuarantineLabel {
			labels[k] = nil // removed: the policy selects the quarantine label alone
		}
	}
	spec := quarantineSpec(uid)
	patch := map[string]any{
		"metadata": map[string]any{
			"resourceVersion": np.ResourceVersion,
			"annotations":     w.annotations(),
			"ownerReferences": []metav1.OwnerReference{podOwner(t.Name, uid)},
		},
		"spec": map[string]any{
			"podSelector": map[string]any{"matchLabels": labels, "matchExpressions": nil},
			"policyTypes": spec.PolicyTypes,
			"ingress":     nil,
			"egress":      nil,
		},
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encode patch: %w", err)
	}
	if _, err := c.NetworkingV1().NetworkPolicies(t.Namespace).Patch(ctx, name, types.MergePatchType, data, w.patchOptions()); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("quarantine NetworkPolicy %s/%s was deleted while being adopted for %s; retrying", t.Namespace, name, t)
		}
		return kubeError("patch quarantine NetworkPolicy of "+t.String(), err)
	}
	return nil
}

// quarantineSpec denies all traffic, both directions, of the pod with uid.
func quarantineSpec(uid string) networkingv1.NetworkPolicySpec {
	return networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{remediation.QuarantineLabel: uid}},
		// Both directions listed with no rules: all traffic denied.
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
	}
}

// isolates reports whether np denies all traffic of exactly the pod with uid:
// it selects that pod's quarantine label and nothing else, and lists both
// directions with no rule.
func isolates(np *networkingv1.NetworkPolicy, uid string) bool {
	sel, spec := np.Spec.PodSelector, np.Spec
	return uid != "" && np.DeletionTimestamp == nil &&
		len(sel.MatchLabels) == 1 && sel.MatchLabels[remediation.QuarantineLabel] == uid && len(sel.MatchExpressions) == 0 &&
		len(spec.Ingress) == 0 && len(spec.Egress) == 0 &&
		slices.Contains(spec.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(spec.PolicyTypes, networkingv1.PolicyTypeEgress)
}

// ownedBy reports whether the pod with uid is np's one owner.
func ownedBy(np *networkingv1.NetworkPolicy, uid string) bool {
	return len(np.OwnerReferences) == 1 && np.OwnerReferences[0].Kind == "Pod" && np.OwnerReferences[0].UID == types.UID(uid)
}

// podOwner is an ownerReference to a pod: its dependents are deleted with it.
func podOwner(name, uid string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: name, UID: types.UID(uid)}
}

func (w writer) deletePod(ctx context.Context, before remediation.Snapshot) (remediation.Snapshot, bool, error) {
	t := w.ref.Step.Target
	c, err := w.cred.get(ctx)
	if err != nil {
		return remediation.Snapshot{}, false, err
	}
	err = c.CoreV1().Pods(t.Namespace).Delete(ctx, t.Name, w.deleteOptions(before.UID))
	if apierrors.IsNotFound(err) {
		return remediation.Snapshot{}, false, nil
	}
	if err != nil {
		return remediation.Snapshot{}, false, kubeError("delete "+t.String(), err)
	}
	return remediation.Snapshot{}, true, nil
}

// event records the change as a Kubernetes Event on the target, so that
// kubectl describe shows who changed it and why. Its name is derived from the
// remediation, run, step and reason, so a retried activity does not add a
// second one while a new run of the remediation (its incident fired again)
// does.
func (w writer) event(ctx context.Context, uid, reason, message string) error {
	t := w.ref.Step.Target
	ns := t.Namespace
	apiVersion := "apps/v1"
	switch t.Kind {
	case remediation.KindNode:
		ns, apiVersion = metav1.NamespaceDefault, "v1"
	case remediation.KindPod:
		apiVersion = "v1"
	}
	sum := sha256.Sum256([]byte(w.ref.Remediation + "\x00" + w.run + "\x00" + strconv.Itoa(w.ref.Index) + "\x00" + reason))
	now := metav1.NewTime(time.Now())
	if len(message) > 1000 {
		message = message[:1000]
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: joinName(t.Name, ".reins-"+hex.EncodeToString(sum[:6])), Namespace: ns, Annotations: eventAnnotations(w.ref, w.run)},
		InvolvedObject: corev1.ObjectReference{
			Kind: t.Kind, Namespace: t.Namespace, Name: t.Name, UID: types.UID(uid), APIVersion: apiVersion,
		},
		Reason:              reason,
		Message:             message,
		Type:                corev1.EventTypeNormal,
		Source:              corev1.EventSource{Component: "reins"},
		ReportingController: "reins.dev/reins",
		ReportingInstance:   "reins-worker",
		Action:              string(w.ref.Step.Action),
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
	}
	c, err := w.cred.get(ctx)
	if err != nil {
		return err
	}
	_, err = c.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{FieldManager: remediation.FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return kubeError("record event on "+t.String(), err)
	}
	return nil
}

// maxNameLength is the longest name of an object (a DNS-1123 subdomain).
const maxNameLength = 253

// quarantinePolicyName names the pod's quarantine NetworkPolicy:
// "reins-quarantine-<pod>" or, when that would be too long, its beginning and
// a hash of the whole pod name, so that two pods never share a policy.
func quarantinePolicyName(pod string) string {
	name := "reins-quarantine-" + pod
	if len(name) <= maxNameLength {
		return name
	}
	sum := sha256.Sum256([]byte(pod))
	return joinName(name, "-"+hex.EncodeToString(sum[:5]))
}

// joinName returns name+suffix, cutting name when the whole would be longer
// than maxNameLength, and then the '-' and '.' it would end with, so that the
// result stays a valid object name. name must be a valid object name and
// suffix a '-' or '.' followed by lower-case letters, digits and '-', ending
// with a letter or digit.
func joinName(name, suffix string) string {
	if n := maxNameLength - len(suffix); len(name) > n {
		name = strings.TrimRight(name[:n], "-.")
	}
	return name + suffix
}

func containerNames(s remediation.Snapshot) string {
	names := ""
	for i, c := range s.Images {
		if i > 0 {
			names += ", "
		}
		names += c.Container
	}
	return names
}
