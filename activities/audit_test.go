package activities

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/reins-dev/reins/remediation"
)

// memorySink keeps records by id; down makes Store fail.
type memorySink struct {
	name   string
	down   bool
	stored map[string][]byte
}

func (m *memorySink) Name() string { return m.name }

func (m *memorySink) Store(_ context.Context, rec remediation.AuditRecord, raw []byte) (bool, error) {
	if m.down {
		return false, errors.New(m.name + " unreachable")
	}
	if _, ok := m.stored[rec.ID]; ok {
		return true, nil
	}
	m.stored[rec.ID] = raw
	return false, nil
}

var _ AuditSink = (*memorySink)(nil)

func TestAuditRecordDeliversToEverySinkOnce(t *testing.T) {
	data, _ := remediation.AuditData(remediation.AuditEndedData{State: remediation.StateCompleted})
	raw, rec, err := remediation.NewAuditRecord("urn:reins:test", "rem", "run", remediation.AuditStarted, 1, "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), data)
	if err != nil {
		t.Fatal(err)
	}
	a := &memorySink{name: "a", stored: map[string][]byte{}}
	b := &memorySink{name: "b", stored: map[string][]byte{}, down: true}
	act := &Audit{Sinks: []AuditSink{a, b}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(act.Record, activity.RegisterOptions{Name: remediation.ActivityRecordAudit})

	// b is down: a stores it, the activity fails (and is retried).
	if _, err := env.ExecuteActivity(remediation.ActivityRecordAudit, remediation.RecordAuditInput{Record: raw}); err == nil {
		t.Fatal("a delivery with a sink down succeeded")
	}
	if string(a.stored[rec.ID]) != string(raw) {
		t.Fatal("the sink that was up did not store the record")
	}
	// The retry: a already has it, b stores it.
	b.down = false
	v, err := env.ExecuteActivity(remediation.ActivityRecordAudit, remediation.RecordAuditInput{Record: raw})
	if err != nil {
		t.Fatal(err)
	}
	var res remediation.RecordAuditResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if res.ID != rec.ID || !reflect.DeepEqual(res.Present, []string{"a"}) || !reflect.DeepEqual(res.Stored, []string{"b"}) {
		t.Errorf("result %+v", res)
	}

	// A record that is not its own hash is refused for good.
	bad := bytes.Replace(raw, []byte(`"Completed"`), []byte(`"RolledBack"`), 1)
	_, err = env.ExecuteActivity(remediation.ActivityRecordAudit, remediation.RecordAuditInput{Record: bad})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != remediation.ErrAuditInvalid || !appErr.NonRetryable() {
		t.Errorf("altered record: %v, want a non-retryable %s", err, remediation.ErrAuditInvalid)
	}
}
