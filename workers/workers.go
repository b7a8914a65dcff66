// Package workers registers reins' workflows and activities under their
// explicit names, builds the clients they need from Config, and runs a worker.
// RegisterWorkflows and RegisterActivities are used by the real worker and by
// the replay tests alike, so that registration cannot drift between them.
package workers

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/reins-dev/reins/activities"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// RegisterWorkflows registers every workflow under its explicit name.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.Remediation, workflow.RegisterOptions{Name: workflows.RemediationWorkflowName})
}

// Activities are the activity implementations a worker runs.
type Activities struct {
	Policy     *activities.Policy
	Kubernetes *activities.Kubernetes
	Approvals  *activities.Approvals
	Audit      *activities.Audit
	// Slack posts co-signature requests; without Slack configured it posts
	// nothing and tells approvers to use reins approve.
	Slack *activities.Slack
}

// RegisterActivities registers every activity under its explicit name.
func RegisterActivities(r worker.ActivityRegistry, a Activities) {
	reg := func(fn any, name string) { r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(a.Policy.Evaluate, remediation.ActivityEvaluatePolicy)
	reg(a.Kubernetes.Observe, remediation.ActivityObserve)
	reg(a.Kubernetes.Execute, remediation.ActivityExecute)
	reg(a.Kubernetes.Verify, remediation.ActivityVerify)
	reg(a.Kubernetes.Compensate, remediation.ActivityCompensate)
	reg(a.Approvals.Check, remediation.ActivityCheckApproval)
	reg(a.Audit.Record, remediation.ActivityRecordAudit)
	slack := a.Slack
	if slack == nil {
		slack = &activities.Slack{}
	}
	reg(slack.NotifyApprovers, remediation.ActivityNotifyApprovers)
	reg(slack.UpdateApprovalMessage, remediation.ActivityUpdateApprovalMessage)
}
