package slackapp

import (
	"errors"
	"strings"
	"testing"
)

const (
	testDigest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testRun    = "01a21618-6a85-76d2-8f56-fce31cb1aac2"
)

func TestButtonValueRoundTrip(t *testing.T) {
	for _, v := range []ButtonValue{
		{Remediation: "reins-alertmanager-abc", Run: testRun, Step: 0, Digest: testDigest},
		{Remediation: "team/checkout:2024.1_x-y", Run: testRun, Step: 49, Digest: testDigest},
	} {
		s, err := v.Encode()
		if err != nil {
			t.Fatalf("encode %+v: %v", v, err)
		}
		if len(s) > 2000 {
			t.Fatalf("value %d bytes: Slack allows 2000", len(s))
		}
		got, err := ParseButtonValue(s)
		if err != nil || got != v {
			t.Fatalf("parse %q = %+v, %v; want %+v", s, got, err, v)
		}
	}
	long, err := ButtonValue{Remediation: "a" + strings.Repeat("b", MaxRemediationID-1), Run: testRun, Digest: testDigest}.Encode()
	if err != nil || len(long) > 2000 {
		t.Fatalf("longest ID: %d bytes, %v", len(long), err)
	}
	// A message posted before buttons carried the run still parses, with
	// no run.
	if v, err := ParseButtonValue("r1|2|" + testDigest + "|reins-am-1"); err != nil || v != (ButtonValue{Remediation: "reins-am-1", Step: 2, Digest: testDigest}) {
		t.Fatalf("r1 value: %+v, %v", v, err)
	}
	// A request made before requests carried the run gets the r1 format.
	if s, err := (ButtonValue{Remediation: "x", Digest: testDigest}).Encode(); err != nil || s != "r1|0|"+testDigest+"|x" {
		t.Errorf("a value without a run: %q, %v", s, err)
	}
	if _, err := (ButtonValue{Remediation: "x", Run: "a run", Digest: testDigest}).Encode(); !errors.Is(err, ErrBadButtonValue) {
		t.Errorf("a value with a bad run encoded: %v", err)
	}
}

func TestButtonValueRefused(t *testing.T) {
	for name, s := range map[string]string{
		"empty":             "",
		"other prefix":      "r3|0|" + testDigest + "|" + testRun + "|x",
		"r2 without run":    "r2|0|" + testDigest + "|x",
		"bad run":           "r2|0|" + testDigest + "|a run|x",
		"no remediation":    "r1|0|" + testDigest,
		"empty remediation": "r1|0|" + testDigest + "|",
		"negative step":     "r1|-1|" + testDigest + "|x",
		"padded step":       "r1|01|" + testDigest + "|x",
		"plus step":         "r1|+1|" + testDigest + "|x",
		"step too big":      "r1|50|" + testDigest + "|x",
		"short digest":      "r1|0|" + testDigest[:63] + "|x",
		"upper digest":      "r1|0|" + strings.ToUpper(testDigest) + "|x",
		"space in id":       "r1|0|" + testDigest + "|a b",
		"pipe in id":        "r1|0|" + testDigest + "|a|b",
		"id too long":       "r1|0|" + testDigest + "|" + strings.Repeat("a", MaxRemediationID+1),
		"leading dot":       "r1|0|" + testDigest + "|.x",
	} {
		if _, err := ParseButtonValue(s); !errors.Is(err, ErrBadButtonValue) {
			t.Errorf("%s: %q parsed (err %v)", name, s, err)
		}
	}
	if _, err := (ButtonValue{Remediation: "x", Step: 0, Digest: "nope"}).Encode(); !errors.Is(err, ErrBadButtonValue) {
		t.Errorf("bad digest encoded: %v", err)
	}
}

func TestVerdictOf(t *testing.T) {
	if v, ok := VerdictOf(ActionApprove); !ok || v != "approve" {
		t.Errorf("approve: %q %v", v, ok)
	}
	if v, ok := VerdictOf(ActionDeny); !ok || v != "deny" {
		t.Errorf("deny: %q %v", v, ok)
	}
	if _, ok := VerdictOf("reins.approve "); ok {
		t.Error("an unknown action has a verdict")
	}
}
