package remediation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func samplePlan(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("../examples/checkout-rollback.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSamplePlanIsValid(t *testing.T) {
	p, err := DecodeBytes(samplePlan(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 2 || *p.Steps[1].Params.Replicas != 6 || !strings.HasPrefix(p.WorkflowID(), "reins-alertmanager-4f1c2a-") {
		t.Errorf("decoded %+v, id %s", p, p.WorkflowID())
	}
}

// fieldErrors decodes and validates data, returning the failing fields.
func fieldErrors(t *testing.T, data string) []string {
	t.Helper()
	p, err := DecodeBytes([]byte(data))
	if err == nil {
		err = p.Validate()
	}
	if err == nil {
		return nil
	}
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %T %v is not a *ValidationError", err, err)
	}
	var fields []string
	for _, fe := range verr.Errors {
		if fe.Message == "" {
			t.Errorf("field %s has no message", fe.Field)
		}
		fields = append(fields, fe.Field)
	}
	return fields
}

func TestBadPlansNameTheField(t *testing.T) {
	good := string(samplePlan(t))
	big := `{"incident":{"source":"a","fingerprint":"b"},"environment":"x","explanation":"` + strings.Repeat("y", MaxPlanBytes) + `","steps":[]}`
	var many strings.Builder
	many.WriteString(`{"incident":{"source":"a","fingerprint":"b"},"environment":"staging","explanation":"x","steps":[`)
	for i := range MaxSteps + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`{"action":"kubernetes.cordon","target":{"kind":"Node","name":"n1"},"justification":"drain it"}`)
	}
	many.WriteString("]}")
	cases := []struct {
		name, data string
		want       []string
	}{
		{"malformed JSON", `{"incident":`, []string{"plan"}},
		{"trailing data", good + `{}`, []string{"plan"}},
		{"unknown field", strings.Replace(good, `"dry_run"`, `"dryrun"`, 1), []string{`"dryrun"`}},
		{"unknown action", strings.Replace(good, "kubernetes.scale", "kubernetes.explode", 1), []string{"steps[1].action"}},
		{"missing target", strings.Replace(good, `"target": {"namespace": "shop", "kind": "Deployment", "name": "checkout"},
     "params": {"replicas": 6}`, `"params": {"replicas": 6}`, 1), []string{"steps[1].target.kind", "steps[1].target.name", "steps[1].target.namespace"}},
		{"negative replicas", strings.Replace(good, `"replicas": 6`, `"replicas": -1`, 1), []string{"steps[1].params.replicas"}},
		{"replicas not a number", strings.Replace(good, `"replicas": 6`, `"replicas": "six"`, 1), []string{"steps[1].params.replicas"}},
		{"replicas too large", strings.Replace(good, `"replicas": 6`, `"replicas": 3000000000`, 1), []string{"steps[1].params.replicas"}},
		{"unknown step field", strings.Replace(good, `"replicas": 6}`, `"replicas": 6}, "replica": 6`, 1), []string{`steps[1]."replica"`}},
		{"param of another action", strings.Replace(good, `"replicas": 6`, `"replicas": 6, "image": "x:1"`, 1), []string{"steps[1].params.image"}},
		{"missing justification", strings.Replace(good, `"justification": "absorb the retry backlog while the rollback settles"`, `"justification": ""`, 1), []string{"steps[1].justification"}},
		{"wrong kind", strings.Replace(good, `"kind": "Deployment", "name": "checkout"},
     "params": {"replicas"`, `"kind": "Node", "name": "checkout"},
     "params": {"replicas"`, 1), []string{"steps[1].target.kind", "steps[1].target.namespace"}},
		{"oversize", big, []string{"plan"}},
		{"too many steps", many.String(), []string{"steps"}},
		{"no steps", `{"incident":{"source":"a","fingerprint":"b"},"environment":"staging","explanation":"x","steps":[]}`, []string{"steps"}},
		{"empty", ``, []string{"plan"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := fieldErrors(t, c.data)
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("fields %v, want %v", got, c.want)
			}
		})
	}
}

func TestDigestIsCanonical(t *testing.T) {
	a, err := DecodeBytes(samplePlan(t))
	if err != nil {
		t.Fatal(err)
	}
	// Same plan, other key order and spacing.
	b, err := DecodeBytes([]byte(`{"steps":[{"justification":"v2.3.0 was the last image without the 5xx regression","params":{"image":"registry.example/checkout:v2.3.0","container":"app"},"target":{"name":"checkout","kind":"Deployment","namespace":"shop"},"action":"kubernetes.set-image"},{"action":"kubernetes.scale","target":{"namespace":"shop","kind":"Deployment","name":"checkout"},"params":{"replicas":6},"justification":"absorb the retry backlog while the rollback settles"}],"explanation":"checkout 5xx at 12% since v2.3.1 rolled out; roll back and add capacity","environment":"production","incident":{"url":"https://grafana.example/d/checkout","fingerprint":"4f1c2a","source":"alertmanager"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest() != b.Digest() || a.StepDigest(1) != b.StepDigest(1) {
		t.Error("the same plan written differently has another digest")
	}
	if a.StepDigest(0) == a.StepDigest(1) {
		t.Error("two steps share a digest")
	}
	six := int32(7)
	b.Steps[1].Params.Replicas = &six
	if a.Digest() == b.Digest() || a.StepDigest(1) == b.StepDigest(1) || a.StepDigest(0) == b.StepDigest(0) {
		t.Error("changing a step's params did not change the plan and step digests")
	}
}

func TestApprovalSignature(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]ed25519.PublicKey{"gw": pub}
	a := Approval{Remediation: "r1", StepDigest: "d1", Approver: Approver{ID: "bob", Source: "slack"}, Group: "oncall", Verdict: VerdictApprove, At: time.Now()}
	signed := a.Sign("gw", priv)
	if err := signed.Verify(keys); err != nil {
		t.Fatalf("signed approval does not verify: %v", err)
	}
	for name, mutate := range map[string]func(*Approval){
		"digest":   func(x *Approval) { x.StepDigest = "d2" },
		"approver": func(x *Approval) { x.Approver.ID = "eve" },
		"verdict":  func(x *Approval) { x.Verdict = VerdictDeny },
		"group":    func(x *Approval) { x.Group = "admins" },
		"key id":   func(x *Approval) { x.KeyID = "nope" },
		"unsigned": func(x *Approval) { x.Signature = nil },
	} {
		x := signed
		x.Signature = bytes.Clone(signed.Signature)
		mutate(&x)
		if err := x.Verify(keys); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s altered: Verify = %v, want ErrBadSignature", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"incident":{"source":"a","fingerprint":"b"},"environment":"staging","explanation":"x","steps":[{"action":"kubernetes.scale","target":{"namespace":"shop","kind":"Deployment","name":"c"},"params":{"replicas":2},"justification":"j"}]}`))
	f.Add([]byte(`{"steps":[{"params":{"replicas":-1}}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":"x","dry_run":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeBytes(data)
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Errors) == 0 {
				t.Fatalf("decode error %v is not a field error", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Errors) == 0 {
				t.Fatalf("validate error %v is not a field error", err)
			}
			return
		}
		// A valid plan has a stable digest and a usable workflow ID.
		again, err := DecodeBytes(data)
		if err != nil || again.Digest() != p.Digest() || p.WorkflowID() == "" {
			t.Fatal("unstable digest or empty workflow ID")
		}
		for i := range p.Steps {
			_ = p.StepDigest(i)
		}
	})
}

// A value of the wrong type in a step names the step and what is expected.
func TestStepDecodeErrorsNameTheStep(t *testing.T) {
	good := string(samplePlan(t))
	for _, c := range []struct{ data, field, message string }{
		{strings.Replace(good, `"replicas": 6`, `"replicas": "6"`, 1), "steps[1].params.replicas", "must be a whole number, got a JSON string"},
		{strings.Replace(good, `"replicas": 6`, `"replicas": 3000000000`, 1), "steps[1].params.replicas", "must be a whole number of at most 2147483647"},
		{strings.Replace(good, `"replicas": 6}`, `"replicas": 6}, "replica": 6`, 1), `steps[1]."replica"`, "is not a plan field"},
	} {
		_, err := DecodeBytes([]byte(c.data))
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Errors) != 1 || verr.Errors[0].Field != c.field || !strings.HasPrefix(verr.Errors[0].Message, c.message) {
			t.Errorf("%v, want %s: %s", err, c.field, c.message)
		}
	}
}
