package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/reins-dev/reins/remediation"
)

// Typed search attributes of a remediation, so that engineers find it in the
// Temporal UI and CLI (e.g. `ReinsRequester = "agent:fixer" AND ReinsState =
// "Denied"`). They must be registered on the namespace; `reins dev` does, and
// the README gives the command for a production cluster.
var (
	AttrIncident    = temporal.NewSearchAttributeKeyKeyword("ReinsIncident")
	AttrRequester   = temporal.NewSearchAttributeKeyKeyword("ReinsRequester")
	AttrEnvironment = temporal.NewSearchAttributeKeyKeyword("ReinsEnvironment")
	AttrRisk        = temporal.NewSearchAttributeKeyKeyword("ReinsRisk")
	AttrState       = temporal.NewSearchAttributeKeyKeyword("ReinsState")
	AttrTarget      = temporal.NewSearchAttributeKeyKeywordList("ReinsTarget")
)

// SearchAttributes lists every attribute as name=type, the form `temporal
// server start-dev --search-attribute` and `temporal operator
// search-attribute create` take.
func SearchAttributes() []string {
	return []string{
		"ReinsIncident=Keyword", "ReinsRequester=Keyword", "ReinsEnvironment=Keyword",
		"ReinsRisk=Keyword", "ReinsState=Keyword", "ReinsTarget=KeywordList",
	}
}

// riskOrder ranks risks; the remediation's risk is the highest of its steps'.
func riskRank(r remediation.Risk) int {
	switch r {
	case remediation.RiskLow:
		return 1
	case remediation.RiskMedium:
		return 2
	case remediation.RiskHigh:
		return 3
	case remediation.RiskCritical:
		return 4
	}
	return 0
}

func (r *run) upsertStart(ctx workflow.Context) {
	p := r.plan
	targets := make([]string, 0, len(p.Steps))
	for _, s := range p.Steps {
		targets = append(targets, s.Target.String())
	}
	r.upsert(ctx,
		AttrIncident.ValueSet(p.Incident.Source+"/"+p.Incident.Fingerprint),
		AttrRequester.ValueSet(p.Requester.String()),
		AttrEnvironment.ValueSet(p.Environment),
		AttrTarget.ValueSet(targets),
		AttrState.ValueSet(string(remediation.StateRunning)),
	)
}

func (r *run) upsertRisk(ctx workflow.Context, risk remediation.Risk) {
	if riskRank(risk) <= riskRank(r.risk) {
		return
	}
	r.risk = risk
	r.upsert(ctx, AttrRisk.ValueSet(string(risk)))
}

func (r *run) upsert(ctx workflow.Context, updates ...temporal.SearchAttributeUpdate) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "remediation", r.status.ID, "error", err)
	}
}
