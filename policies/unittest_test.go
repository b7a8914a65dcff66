package policies

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// countTestRules counts the test_ rules of the embedded bundle's test files,
// independently of OPA's runner.
func countTestRules(t *testing.T) int {
	t.Helper()
	files, err := readEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^test_\w+ if\b`)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f.Name, "_test.rego") {
			n += len(re.FindAll(f.Data, -1))
		}
	}
	return n
}

func TestDefaultBundleRegoTestsPass(t *testing.T) {
	rep, err := Test(context.Background(), "")
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	var out strings.Builder
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	want := countTestRules(t)
	if want < 60 {
		t.Fatalf("found only %d test rules in the default bundle", want)
	}
	if rep.Passed != want || rep.Failed != 0 || rep.Errored != 0 || rep.Skipped != 0 || len(rep.Tests) != want {
		t.Fatalf("report: %d passed, %d failed, %d errored, %d skipped of %d; want all %d passed",
			rep.Passed, rep.Failed, rep.Errored, rep.Skipped, len(rep.Tests), want)
	}
	if !rep.OK() {
		t.Fatal("OK() = false")
	}
	if rep.Bundle != DefaultDigest() {
		t.Errorf("report bundle %s, want %s", rep.Bundle, DefaultDigest())
	}
	for _, tr := range rep.Tests {
		if tr.File == "" || tr.Line == 0 || !strings.HasPrefix(tr.Name, "test_") || tr.Package != "data.reins.policy_test" {
			t.Errorf("test result without a location or name: %+v", tr)
		}
	}
	// Every rule file of the default bundle has its tests.
	for _, name := range DefaultBundleFiles() {
		if !strings.HasSuffix(name, ".rego") || strings.HasSuffix(name, "_test.rego") {
			continue
		}
		test := strings.TrimSuffix(name, ".rego") + "_test.rego"
		found := false
		for _, tr := range rep.Tests {
			if tr.File == test {
				found = true
			}
		}
		if !found {
			t.Errorf("%s has no tests in %s", name, test)
		}
	}
}

func TestFailingRegoTestIsReported(t *testing.T) {
	dir := filepath.Join("testdata", "failing_tests")
	rep, err := Test(context.Background(), dir)
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	if rep.Passed != 2 || rep.Failed != 1 || rep.Errored != 0 || rep.Skipped != 1 || rep.OK() {
		t.Fatalf("report: %d passed, %d failed, %d errored, %d skipped, OK %v; want 2, 1, 0, 1, false",
			rep.Passed, rep.Failed, rep.Errored, rep.Skipped, rep.OK())
	}
	var out strings.Builder
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Log("\n" + text)
	for _, want := range []string{
		"FAIL  data.reins.policy_test.test_denies",
		filepath.Join(dir, "decision_test.rego") + ":14",
		"PASS: 2/4  FAIL: 1/4  SKIPPED: 1/4",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report text lacks %q", want)
		}
	}
}

func TestRegoTestErrorsAreReported(t *testing.T) {
	// A test that hits a built-in error counts as an error, not a pass.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"decision.rego":      "package reins.policy\n\ndecision := {\"effect\": \"allow\", \"risk\": \"low\", \"reasons\": []}\n",
		"decision_test.rego": "package reins.policy_test\n\ntest_divides if {\n\tx := 1 / 0\n\tx > 0\n}\n",
	})
	rep, err := Test(context.Background(), dir)
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	if rep.Errored != 1 || rep.OK() || !strings.Contains(rep.Tests[0].Error, "divide by zero") {
		t.Fatalf("report %+v, want one error about the division", rep)
	}
}

func TestTestRefusesBrokenBundle(t *testing.T) {
	_, err := Test(context.Background(), filepath.Join("testdata", "broken"))
	var be *BundleError
	if !errors.As(err, &be) {
		t.Fatalf("Test: %v, want a *BundleError", err)
	}
}
