// Package intake turns incident events into remediations: it reads
// Alertmanager webhook posts, CloudEvents and NATS JetStream messages,
// matches each event to a trigger, fills the trigger's playbook into a plan
// and starts it on Temporal, one remediation per incident.
//
// # Events
//
// An Alertmanager post (payload version 4) is one Event per alert; its
// fingerprint is Alertmanager's. A CloudEvent (1.0, binary or structured
// mode) is one Event; reins reads its data when it is a JSON object of
// this shape, all members optional, others ignored:
//
//	{"labels": {"namespace": "shop-eu", "deployment": "checkout"},
//	 "annotations": {"summary": "checkout is short of replicas"},
//	 "status": "firing",            // or "resolved"
//	 "fingerprint": "checkout-eu",  // the incident; default: hash of source and id
//	 "url": "https://grafana.example/d/checkout"}
//
// and its extension attributes are labels too (data.labels win). A NATS
// message holds a CloudEvent in structured JSON mode, or an Alertmanager
// payload when its Reins-Event-Kind header says "alertmanager".
//
// # Triggers
//
// Triggers are tried in their configured order; the first that matches an
// event takes it. A trigger matches on the event's kind, its type (an
// alert's alertname, a CloudEvent's type) and its labels, with
// Alertmanager's matcher syntax:
//
//	triggers:
//	  - name: replicas-mismatch
//	    match:
//	      kind: alertmanager
//	      type: KubeDeploymentReplicasMismatch
//	      labels: ['severity=critical', 'namespace=~"shop-.*"']
//	    playbook:
//	      environment: production
//	      explanation: '{{ .annotations.summary }}'
//	      steps:
//	        - action: kubernetes.rollout-restart
//	          target: {namespace: '{{ .labels.namespace }}', kind: Deployment, name: '{{ .labels.deployment }}'}
//	          justification: 'restart {{ .labels.deployment }}: its replicas do not become ready'
//
// The playbook is a plan without id, incident and requester. Each of its
// strings is a Go text/template over .labels, .annotations and .event
// (kind, type, source, id, subject, status, fingerprint, url), executed
// with missingkey=error: a reference to a label the event does not have
// refuses the event, naming the trigger, the field and the label. Values
// are substituted into the plan's fields, never into JSON text, so a label
// holding quotes or braces stays one value. The filled plan is decoded and
// validated with remediation's rules like any other.
//
// The remediation's incident is {source: <trigger name>, fingerprint:
// <event fingerprint>}, so its workflow ID is
// reins-<trigger>-<fingerprint>-<hash> (remediation.Plan.WorkflowID; the
// hash, 16 hex digits, is of the exact trigger name and fingerprint, so
// that incidents that read alike never share one): every event of one
// incident joins the one remediation (conflict policy "use existing"). No
// plan proposed through the gateway's agent door can take that ID: those
// get IDs of their client's own. Its requester is the agent "trigger:<name>" with the
// trigger's owner: the trigger answers for it, never the event's content.
// A resolved event is signalled to the running remediation
// (workflows.SignalIncidentResolved).
//
// Every event that starts nothing (no trigger matches, the playbook cannot
// be filled, the input cannot be read) is recorded in the gateway's audit
// chain, and so is every start, join and resolution. A record keeps a
// bounded summary of its event (long values cut, labels past a total left
// out, saying so), so that it fits the audit sink whatever the event; one
// the sink still refuses for its size is recorded without the event's
// content, and if even that is refused, a NATS message is terminated
// rather than sent again.
//
// # Queued delivery
//
// The HTTP doors either dispatch an event themselves, answering once
// Temporal accepted the start, or queue it (Queue): they read and check it
// as the Dispatcher does (Dispatcher.Admit: a bad request is refused, and
// nothing of an unmatched event or an unfillable playbook is queued),
// publish each remaining event as its own message to the JetStream stream
// the Consumer reads, record the unmatched and refused events once
// JetStream stored the others (a request answered 503 has recorded
// nothing), and answer. The
// Consumer then starts, joins or signals the remediation, exactly as for
// any NATS message. A queued message's Nats-Msg-Id is a hash of its
// content, so an identical event within the stream's duplicate window (2
// minutes when reins creates the stream) is stored once and answered, and
// recorded, as a duplicate.
package intake
