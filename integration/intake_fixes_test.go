//go:build integration

package integration

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/intake"
	"github.com/reins-dev/reins/remediation"
)

// incidentID is the workflow ID the intake starts an incident's remediation
// under: reins-<trigger>-<fingerprint>-<hash>.
func incidentID(source, fingerprint string) string {
	return remediation.Plan{Incident: remediation.Incident{Source: source, Fingerprint: fingerprint}}.WorkflowID()
}

// An agent that proposes a plan for the incident a trigger will start (its
// name as the source, the alert's predictable fingerprint) gets a
// remediation of its own: when the alert fires, the intake starts the
// trigger's playbook instead of joining the agent's run.
func TestIntakeAlertNotTakenByAnAgentsPlan(t *testing.T) {
	d := startAgentDoor(t)
	door := startIntakeDoor(t)
	ns := namespace(t)
	deployment(t, ns, "web", 1, "registry.example/web:v1")
	fp := unique("squat")
	intakeID := incidentID("it-replicas", fp)
	if !strings.HasPrefix(intakeID, "reins-it-replicas-"+fp+"-") {
		t.Fatalf("the intake's ID %s", intakeID)
	}

	squat := agentDoorPlan(ns, "web", 2)
	squat.ID = intakeID
	squat.Incident = remediation.Incident{Source: "it-replicas", Fingerprint: fp}
	code, body, _ := d.call(t, http.MethodPost, gateway.RemediationsPath, d.token, squat)
	var p gateway.Problem
	if err := json.Unmarshal(body, &p); err != nil || code != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Field != "id" {
		t.Fatalf("a plan naming the intake's ID: %d %s", code, body)
	}
	wantNeverStarted(t, intakeID)

	squat.ID = ""
	code, body, _ = d.call(t, http.MethodPost, gateway.RemediationsPath, d.token, squat)
	var started gateway.ProposeResponse
	if err := json.Unmarshal(body, &started); err != nil || code != http.StatusAccepted {
		t.Fatalf("propose: %d %s", code, body)
	}
	if want := "agent:" + d.name + ":it-replicas-" + fp + "-"; !strings.HasPrefix(started.ID, want) || started.ID == intakeID {
		t.Fatalf("the agent's remediation is %s, want %s<hash>", started.ID, want)
	}
	code, body, _ = d.call(t, http.MethodPost, gateway.RemediationsPath, d.token, squat)
	var again gateway.ProposeResponse
	if err := json.Unmarshal(body, &again); err != nil || code != http.StatusAccepted || again.ID != started.ID || !again.Joined {
		t.Errorf("the agent's second proposal: %d %s, want it to join %s", code, body, started.ID)
	}

	code, answer, err := intakePost(http.DefaultClient, door.url+gateway.PathAlertmanager, alertPost(fp, "firing"), nil)
	var got gateway.IntakeResponse
	if err == nil {
		err = json.Unmarshal(answer, &got)
	}
	if err != nil || code != http.StatusAccepted || len(got.Events) != 1 || got.Events[0].Result != intake.ResultStarted || got.Events[0].Remediation != intakeID {
		t.Fatalf("the alert: %d %s %v, want started as %s", code, answer, err, intakeID)
	}
	desc, err := stack.client.DescribeWorkflow(context.Background(), intakeID, "")
	if err != nil || desc.TaskQueueName != door.queue {
		t.Fatalf("the intake's remediation: %+v, %v; want it on the intake's task queue %s", desc, err, door.queue)
	}
}

// oversizedAlertPost is an Alertmanager post that passes every intake
// limit and that no trigger takes: 64 labels of 8 KiB of '<', which
// encoding/json writes as six bytes each (a 3 MB record unbounded).
func oversizedAlertPost(fp string) []byte {
	labels := []string{`"alertname":"Noise"`}
	for i := range 63 {
		labels = append(labels, fmt.Sprintf(`"l%02d":%q`, i, strings.Repeat("<", 8192)))
	}
	return fmt.Appendf(nil, `{"version":"4","status":"firing","externalURL":"http://am","alerts":[{"status":"firing","fingerprint":%q,"labels":{%s}}]}`,
		fp, strings.Join(labels, ","))
}

// The record of an oversized event fits the NATS audit sink (1 MB max
// payload): over HTTP it is answered, over NATS its message is acknowledged
// once, instead of a 503 and a redelivery for ever.
func TestIntakeOversizedEventIsRecordedOnNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := unique("it-audit-big")
	sink, err := audit.OpenNATS(ctx, audit.NATSOptions{URL: stack.nats.URL, Stream: strings.ToUpper(strings.ReplaceAll(name, "-", "_")),
		SubjectPrefix: strings.ReplaceAll(name, "-", "."), Logger: stack.logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	rec, err := gateway.NewRecorder([]gateway.AuditSink{sink}, stack.temporal.Namespace, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	triggers, err := intake.Compile(intakeTriggerConfigs(t))
	if err != nil {
		t.Fatal(err)
	}
	d, err := intake.NewDispatcher(triggers, intake.TemporalClient{Client: intakeClient(t), TaskQueue: unique("reins-intake")}, rec, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	q, stream := startIntakeQueue(t, d)
	sum := sha256.Sum256([]byte(intakeToken))
	in, err := gateway.NewIntake(gateway.IntakeOptions{Dispatcher: d, TokenSHA256: [][]byte{sum[:]}, Logger: stack.logger})
	if err != nil {
		t.Fatal(err)
	}
	gw := newTestGateway(t)
	in.Mount(gw)
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); in.Close() })

	post := oversizedAlertPost(unique("big"))
	code, answer, err := intakePost(http.DefaultClient, srv.URL+gateway.PathAlertmanager, post, nil)
	if err != nil || code != http.StatusAccepted || !strings.Contains(string(answer), `"result":"unmatched"`) {
		t.Fatalf("over HTTP: %d %.300s %v, want 202 unmatched", code, answer, err)
	}

	nc, err := nats.Connect(stack.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg := nats.NewMsg(q.Subject())
	msg.Data = oversizedAlertPost(unique("big"))
	msg.Header.Set(intake.KindHeader, string(intake.KindAlertmanager))
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.Consumer(ctx, "it")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the NATS message acknowledged", func() (bool, error) {
		ci, err := cons.Info(ctx)
		if err != nil {
			return false, err
		}
		if ci.NumRedelivered != 0 {
			t.Fatalf("the message was sent again (%d deliveries)", ci.Delivered.Consumer)
		}
		return ci.AckFloor.Stream >= 1 && ci.NumAckPending == 0, fmt.Errorf("ack floor %d, %d pending", ci.AckFloor.Stream, ci.NumAckPending)
	})

	raws, err := sink.Read(ctx, gateway.RecorderSubject)
	if err != nil {
		t.Fatal(err)
	}
	unmatched := 0
	for _, raw := range raws {
		r, err := remediation.ParseAuditRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		if r.Type != gateway.AuditEventUnmatched {
			continue
		}
		var o intake.Outcome
		if err := json.Unmarshal(r.Data, &o); err != nil {
			t.Fatal(err)
		}
		if !o.Event.Truncated || o.Event.OmittedLabels == 0 || len(raw) > 256<<10 {
			t.Errorf("record of %d bytes: truncated %v, %d labels left out", len(raw), o.Event.Truncated, o.Event.OmittedLabels)
		}
		unmatched++
	}
	if unmatched != 2 {
		t.Errorf("%d unmatched records in the audit stream, want 2 (HTTP, NATS)", unmatched)
	}
}
