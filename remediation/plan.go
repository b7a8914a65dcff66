package remediation

import (
	"strconv"
	"strings"
)

// Action names a kind of change reins can make.
type Action string

// The actions reins knows. Anything else is refused by Validate (and denied by policy).
const (
	ActionScale          Action = "kubernetes.scale"
	ActionRolloutRestart Action = "kubernetes.rollout-restart"
	ActionSetImage       Action = "kubernetes.set-image"
	ActionCordon         Action = "kubernetes.cordon"
	ActionUncordon       Action = "kubernetes.uncordon"
	ActionQuarantinePod  Action = "kubernetes.quarantine-pod"
	ActionDeletePod      Action = "kubernetes.delete-pod"
)

// Kinds of Kubernetes objects a step may target.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindNode        = "Node"
	KindPod         = "Pod"
)

// ActionSpec describes what an action accepts.
type ActionSpec struct {
	Action Action
	// Kinds are the object kinds the action may target.
	Kinds []string
	// Params are the params the action requires; no others are accepted.
	Params []string
	// Irreversible actions have no compensation.
	Irreversible bool
	// Summary is one line for humans (CLI, MCP, docs).
	Summary string
}

// Actions lists every action in a fixed order.
func Actions() []ActionSpec {
	return []ActionSpec{
		{Action: ActionScale, Kinds: []string{KindDeployment, KindStatefulSet}, Params: []string{"replicas"},
			Summary: "set the replica count; undone by setting it back"},
		{Action: ActionRolloutRestart, Kinds: []string{KindDeployment, KindStatefulSet, KindDaemonSet},
			Summary: "restart every pod through a rollout; undone by restoring the pod template's restart stamp"},
		{Action: ActionSetImage, Kinds: []string{KindDeployment, KindStatefulSet, KindDaemonSet}, Params: []string{"container", "image"},
			Summary: "set one container's image; undone by setting the previous image back"},
		{Action: ActionCordon, Kinds: []string{KindNode},
			Summary: "mark the node unschedulable; undone by restoring its previous schedulability"},
		{Action: ActionUncordon, Kinds: []string{KindNode},
			Summary: "mark the node schedulable; undone by restoring its previous schedulability"},
		{Action: ActionQuarantinePod, Kinds: []string{KindPod},
			Summary: "label the pod " + QuarantineLabel + " and isolate it with a deny-all NetworkPolicy; undone by removing both"},
		{Action: ActionDeletePod, Kinds: []string{KindPod}, Irreversible: true,
			Summary: "delete the pod; IRREVERSIBLE: nothing can undo it"},
	}
}

// Spec returns the ActionSpec of a, and false for an unknown action.
func (a Action) Spec() (ActionSpec, bool) {
	for _, s := range Actions() {
		if s.Action == a {
			return s, true
		}
	}
	return ActionSpec{}, false
}

// Irreversible reports whether a has no compensation.
func (a Action) Irreversible() bool {
	s, ok := a.Spec()
	return ok && s.Irreversible
}

// Labels and annotations reins writes on the objects it changes.
const (
	AnnotationRemediation = "reins.dev/remediation"
	AnnotationStep        = "reins.dev/step"
	AnnotationRequester   = "reins.dev/requester"
	// QuarantineLabel marks a quarantined pod; the deny-all NetworkPolicy selects it.
	QuarantineLabel = "reins.dev/quarantine"
	// RestartedAtAnnotation is the pod-template annotation a rollout restart sets
	// (the same one kubectl rollout restart uses).
	RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
	// FieldManager is the field manager of every write.
	FieldManager = "reins"
)

// Limits on a plan.
const (
	MaxPlanBytes = 64 << 10
	MaxSteps     = 50
	MaxReplicas  = 10000
)

// Plan is a proposed remediation: a list of steps with the reasoning behind them.
// It is a public contract written by agents and tools; see Decode and Validate.
type Plan struct {
	// ID is the remediation (workflow) ID. Empty: derived from the incident, see WorkflowID.
	ID          string    `json:"id,omitempty"`
	Incident    Incident  `json:"incident"`
	Requester   Requester `json:"requester,omitempty"`
	Environment string    `json:"environment"`
	Explanation string    `json:"explanation"`
	// DryRun runs every step with server-side dry run: everything is checked, nothing changes.
	DryRun bool   `json:"dry_run,omitempty"`
	Steps  []Step `json:"steps"`
}

// Incident is what the remediation answers.
type Incident struct {
	Source      string `json:"source"`
	Fingerprint string `json:"fingerprint"`
	URL         string `json:"url,omitempty"`
}

// Requester kinds.
const (
	RequesterAgent = "agent"
	RequesterHuman = "human"
)

// Requester is who proposed the plan. The door that accepts a plan sets it from
// the authenticated identity; it is never taken on trust from an agent.
type Requester struct {
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
	// Owner is the human accountable for an agent requester (from the
	// gateway's client config): like the requester, they may not co-sign.
	Owner string `json:"owner,omitempty"`
}

func (r Requester) String() string {
	if r.Kind == "" {
		return r.Name
	}
	return r.Kind + ":" + r.Name
}

// Step is one change.
type Step struct {
	Action        Action `json:"action"`
	Target        Target `json:"target"`
	Params        Params `json:"params,omitempty"`
	Justification string `json:"justification"`
}

// Target names one Kubernetes object.
type Target struct {
	Cluster   string `json:"cluster,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
}

func (t Target) String() string {
	s := strings.ToLower(t.Kind) + "/" + t.Name
	if t.Namespace != "" {
		s = t.Namespace + "/" + s
	}
	if t.Cluster != "" {
		s = t.Cluster + ":" + s
	}
	return s
}

// Params are an action's parameters; which ones an action takes is in its ActionSpec.
type Params struct {
	Replicas  *int32 `json:"replicas,omitempty"`
	Container string `json:"container,omitempty"`
	Image     string `json:"image,omitempty"`
}

// present lists the params that are set, in a fixed order.
func (p Params) present() []string {
	var out []string
	if p.Replicas != nil {
		out = append(out, "replicas")
	}
	if p.Container != "" {
		out = append(out, "container")
	}
	if p.Image != "" {
		out = append(out, "image")
	}
	return out
}

// Describe is a one-line human description of the step, e.g. "scale shop/deployment/checkout to 6".
func (s Step) Describe() string {
	switch s.Action {
	case ActionScale:
		if s.Params.Replicas != nil {
			return "scale " + s.Target.String() + " to " + strconv.Itoa(int(*s.Params.Replicas))
		}
	case ActionSetImage:
		return "set image of " + s.Target.String() + " container " + s.Params.Container + " to " + s.Params.Image
	case ActionRolloutRestart:
		return "restart " + s.Target.String()
	case ActionCordon:
		return "cordon " + s.Target.String()
	case ActionUncordon:
		return "uncordon " + s.Target.String()
	case ActionQuarantinePod:
		return "quarantine " + s.Target.String()
	case ActionDeletePod:
		return "delete " + s.Target.String() + " (irreversible)"
	}
	return string(s.Action) + " " + s.Target.String()
}
