package remediation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func testRecord(t *testing.T, seq int64, prev string) ([]byte, AuditRecord) {
	t.Helper()
	data, err := AuditData(AuditVerificationData{AuditStep: AuditStep{Step: 1, Description: "scale shop/deployment/a to 4", Target: "shop/deployment/a"}, Observed: "4/4 <ready> & \"available\""})
	if err != nil {
		t.Fatal(err)
	}
	raw, rec, err := NewAuditRecord(AuditSource("default"), "rem-1", "run-1", AuditVerificationPassed, seq, prev,
		time.Date(2026, 11, 25, 12, 0, 1, 500, time.FixedZone("CET", 3600)), data)
	if err != nil {
		t.Fatal(err)
	}
	return raw, rec
}

// The id is the SHA-256 of the record's bytes with the id value empty;
// anyone can check it without reins.
func TestAuditRecordIDIsTheHashOfItsBytes(t *testing.T) {
	raw, rec := testRecord(t, 1, "")
	blank := strings.Replace(string(raw), `"id":"`+rec.ID+`"`, `"id":""`, 1)
	sum := sha256.Sum256([]byte(blank))
	if hex.EncodeToString(sum[:]) != rec.ID {
		t.Fatalf("id %s is not the hash of the blanked record", rec.ID)
	}
	parsed, err := ParseAuditRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.ID != rec.ID || parsed.Seq != 1 || parsed.Subject != "rem-1" || parsed.RunID != "run-1" || !parsed.Time.Equal(rec.Time) {
		t.Errorf("parsed %+v, built %+v", parsed, rec)
	}
	again, _ := testRecord(t, 1, "")
	if !bytes.Equal(raw, again) {
		t.Error("the same arguments gave different bytes")
	}
	if bytes.ContainsAny(raw, "\n\r") {
		t.Error("a record spans lines")
	}
}

// Strict CloudEvents 1.0 structured JSON: the required attributes, the
// optional ones reins sets, extension names as the spec requires, an RFC
// 3339 time in UTC, data an object.
func TestAuditRecordIsACloudEvent(t *testing.T) {
	raw, rec := testRecord(t, 2, strings.Repeat("ab", 32))
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	str := func(k string) string {
		var s string
		if err := json.Unmarshal(m[k], &s); err != nil {
			t.Fatalf("attribute %s is not a string: %s", k, m[k])
		}
		return s
	}
	if str("specversion") != "1.0" || str("id") == "" || str("source") != "urn:reins:default" || str("type") != "reins.verification.passed" ||
		str("subject") != "rem-1" || str("datacontenttype") != "application/json" {
		t.Errorf("envelope %s", raw)
	}
	if _, err := time.Parse(time.RFC3339Nano, str("time")); err != nil || !strings.HasSuffix(str("time"), "Z") {
		t.Errorf("time %q is not RFC 3339 UTC: %v", str("time"), err)
	}
	if !strings.HasPrefix(string(m["data"]), "{") {
		t.Errorf("data %s is not an object", m["data"])
	}
	context := map[string]bool{"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true, "datacontenttype": true, "data": true}
	ext := regexp.MustCompile(`^[a-z0-9]{1,20}$`)
	for k := range m {
		if !context[k] && !ext.MatchString(k) {
			t.Errorf("extension attribute %q is not lower-case letters and digits", k)
		}
	}
	for _, k := range []string{"seq", "prev", "runid"} {
		if _, ok := m[k]; !ok {
			t.Errorf("extension %q missing", k)
		}
	}
	if rec.Seq != 2 || rec.Prev != strings.Repeat("ab", 32) {
		t.Errorf("seq/prev %d %s", rec.Seq, rec.Prev)
	}
	// The first record of a chain has no prev at all (not an empty string).
	first, _ := testRecord(t, 1, "")
	if bytes.Contains(first, []byte(`"prev"`)) {
		t.Errorf("first record has a prev: %s", first)
	}
}

func TestAuditRecordRejectsAlterations(t *testing.T) {
	raw, _ := testRecord(t, 2, strings.Repeat("ab", 32))
	cases := map[string]string{
		"data changed":    strings.Replace(string(raw), `"step":1`, `"step":2`, 1),
		"time changed":    strings.Replace(string(raw), `2026-11-25T11`, `2026-11-25T10`, 1),
		"prev changed":    strings.Replace(string(raw), strings.Repeat("ab", 32), strings.Repeat("cd", 32), 1),
		"seq changed":     strings.Replace(string(raw), `"seq":2`, `"seq":3`, 1),
		"spaces added":    strings.Replace(string(raw), `,"type"`, `, "type"`, 1),
		"unknown field":   strings.Replace(string(raw), `,"type"`, `,"extra":"x","type"`, 1),
		"truncated":       string(raw[:len(raw)-5]),
		"trailing data":   string(raw) + `{}`,
		"not hex":         string(raw[:27]) + "ZZ" + string(raw[29:]),
		"no id":           `{"specversion":"1.0","id":"","source":"x"}`,
		"other version":   strings.Replace(string(raw), `"specversion":"1.0"`, `"specversion":"0.3"`, 1),
		"empty":           "",
		"unknown type":    strings.Replace(string(raw), "reins.verification.passed", "reins.verification.maybe", 1),
		"subject removed": strings.Replace(string(raw), `"subject":"rem-1",`, ``, 1),
	}
	for name, bad := range cases {
		if _, err := ParseAuditRecord([]byte(bad)); !errors.Is(err, ErrAuditRecord) {
			t.Errorf("%s: ParseAuditRecord = %v, want ErrAuditRecord", name, err)
		}
	}
}

func TestNewAuditRecordChecksItsArguments(t *testing.T) {
	data := json.RawMessage(`{}`)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, build := range map[string]func() error{
		"seq 0": func() error {
			_, _, err := NewAuditRecord("urn:reins:d", "r", "run", AuditStarted, 0, "", at, data)
			return err
		},
		"prev on seq 1": func() error {
			_, _, err := NewAuditRecord("urn:reins:d", "r", "run", AuditStarted, 1, "x", at, data)
			return err
		},
		"no prev": func() error {
			_, _, err := NewAuditRecord("urn:reins:d", "r", "run", AuditEnded, 2, "", at, data)
			return err
		},
		"no subject": func() error {
			_, _, err := NewAuditRecord("urn:reins:d", "", "run", AuditStarted, 1, "", at, data)
			return err
		},
		"no run": func() error {
			_, _, err := NewAuditRecord("urn:reins:d", "r", "", AuditStarted, 1, "", at, data)
			return err
		},
		"no time": func() error {
			_, _, err := NewAuditRecord("urn:reins:d", "r", "run", AuditStarted, 1, "", time.Time{}, data)
			return err
		},
		"data not obj": func() error {
			_, _, err := NewAuditRecord("urn:reins:d", "r", "run", AuditStarted, 1, "", at, json.RawMessage(`[]`))
			return err
		},
		"unknown type": func() error {
			_, _, err := NewAuditRecord("urn:reins:d", "r", "run", "reins.x", 1, "", at, data)
			return err
		},
		"source w/ space": func() error {
			_, _, err := NewAuditRecord("urn reins", "r", "run", AuditStarted, 1, "", at, data)
			return err
		},
	} {
		if err := build(); !errors.Is(err, ErrAuditRecord) {
			t.Errorf("%s: %v, want ErrAuditRecord", name, err)
		}
	}
}

func TestDescribeChange(t *testing.T) {
	three, six := int32(3), int32(6)
	cordoned := true
	target := Target{Namespace: "shop", Kind: KindDeployment, Name: "checkout"}
	cases := []struct {
		step   Step
		before Snapshot
		want   string
	}{
		{Step{Action: ActionScale, Target: target, Params: Params{Replicas: &six}}, Snapshot{Replicas: &three}, "scale shop/deployment/checkout 3→6"},
		{Step{Action: ActionSetImage, Target: target, Params: Params{Container: "app", Image: "r/c:v2"}},
			Snapshot{Images: []ContainerImage{{Container: "app", Image: "r/c:v1"}}}, "set image of shop/deployment/checkout container app r/c:v1→r/c:v2"},
		{Step{Action: ActionUncordon, Target: Target{Kind: KindNode, Name: "n-1"}}, Snapshot{Unschedulable: &cordoned}, "uncordon node/n-1 unschedulable→schedulable"},
	}
	for _, c := range cases {
		if got := DescribeChange(c.step, c.before); got != c.want {
			t.Errorf("DescribeChange = %q, want %q", got, c.want)
		}
	}
}
