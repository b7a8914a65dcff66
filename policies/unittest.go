package policies

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/tester"
)

// DefaultTestTimeout bounds each Rego unit test run by Test.
const DefaultTestTimeout = 5 * time.Second

// Outcome is how one Rego unit test ended.
type Outcome string

// Outcomes of a Rego unit test.
const (
	OutcomePass Outcome = "PASS"
	// OutcomeFail: the test rule was false or undefined.
	OutcomeFail Outcome = "FAIL"
	// OutcomeError: the test could not be evaluated (e.g. a built-in error or a timeout).
	OutcomeError Outcome = "ERROR"
	// OutcomeSkip: the test is named todo_test_*.
	OutcomeSkip Outcome = "SKIP"
)

// TestResult is one Rego unit test's result.
type TestResult struct {
	// Package is the Rego package, e.g. "data.reins.policy_test".
	Package string `json:"package"`
	// Name is the test rule, e.g. "test_staging_scale_is_allowed".
	Name string `json:"name"`
	// File and Line locate the test rule.
	File     string        `json:"file"`
	Line     int           `json:"line"`
	Outcome  Outcome       `json:"outcome"`
	Duration time.Duration `json:"duration"`
	// Error is the evaluation error of an OutcomeError.
	Error string `json:"error,omitempty"`
	// Output is what the test printed (Rego print()).
	Output string `json:"output,omitempty"`
}

// Report is the result of a bundle's Rego unit tests.
type Report struct {
	// Dir is the bundle folder; "" for the embedded default bundle.
	Dir string `json:"dir"`
	// Bundle is the digest of the bundle tested.
	Bundle string `json:"bundle"`
	// Tests are sorted by file and line.
	Tests []TestResult `json:"tests"`
	// Counts of Tests by outcome.
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Errored int `json:"errored"`
	Skipped int `json:"skipped"`
}

// OK reports whether no test failed or errored.
func (r Report) OK() bool { return r.Failed == 0 && r.Errored == 0 }

// WriteText writes the report for a terminal: one line per test (with
// file:line, and the error or output of a test that did not pass) and a
// summary line, like `opa test -v`.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	name := r.Dir
	if name == "" {
		name = "embedded default bundle"
	}
	fmt.Fprintf(&b, "policy bundle %s (%s)\n", name, r.Bundle)
	for _, t := range r.Tests {
		fmt.Fprintf(&b, "%-5s %s.%s (%s) %s:%d\n", t.Outcome, t.Package, t.Name, t.Duration.Round(time.Microsecond), t.File, t.Line)
		if t.Outcome != OutcomePass {
			if t.Error != "" {
				fmt.Fprintf(&b, "      %s\n", t.Error)
			}
			for line := range strings.Lines(t.Output) {
				fmt.Fprintf(&b, "      %s", line)
			}
			if t.Output != "" && !strings.HasSuffix(t.Output, "\n") {
				b.WriteString("\n")
			}
		}
	}
	b.WriteString(strings.Repeat("-", 60) + "\n")
	fmt.Fprintf(&b, "PASS: %d/%d", r.Passed, len(r.Tests))
	if r.Failed > 0 {
		fmt.Fprintf(&b, "  FAIL: %d/%d", r.Failed, len(r.Tests))
	}
	if r.Errored > 0 {
		fmt.Fprintf(&b, "  ERROR: %d/%d", r.Errored, len(r.Tests))
	}
	if r.Skipped > 0 {
		fmt.Fprintf(&b, "  SKIPPED: %d/%d", r.Skipped, len(r.Tests))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write the policy test report: %w", err)
	}
	return nil
}

// Test runs the Rego unit tests (rules named test_*) of the bundle in dir, or
// of the embedded default bundle when dir is "", with OPA's test runner, the
// bundle's data and the same built-ins and Rego version as decisions. A
// built-in error fails its test. The error is non-nil only when the tests
// could not run: a bundle that does not compile (a *BundleError naming
// file:line) or ctx ending; failing tests are in the Report (see Report.OK).
func Test(ctx context.Context, dir string) (Report, error) {
	files, err := readBundle(dir)
	if err != nil {
		return Report{}, err
	}
	l, err := parseBundle(dir, files)
	if err != nil {
		return Report{}, err
	}
	// Compile once here for errors that name file:line; the runner compiles
	// its own copy (the compiler copies the modules) with its test stages.
	if _, err := l.compile(true); err != nil {
		return Report{}, err
	}
	ch, err := tester.NewRunner().
		SetCompiler(newCompiler(true)).
		SetStore(l.store()).
		SetModules(l.modules).
		SetTimeout(DefaultTestTimeout).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		RunTests(ctx, nil)
	if err != nil {
		return Report{}, fmt.Errorf("run the Rego unit tests of %s: %w", cmpOr(dir, "the embedded default bundle"), err)
	}
	rep := Report{Dir: dir, Bundle: l.digest}
	for res := range ch {
		t := TestResult{
			Package:  res.Package,
			Name:     res.Name,
			Duration: res.Duration,
			Output:   string(res.Output),
		}
		if res.Location != nil {
			t.File, t.Line = res.Location.File, res.Location.Row
		}
		switch {
		case res.Skip:
			t.Outcome = OutcomeSkip
			rep.Skipped++
		case res.Error != nil:
			t.Outcome = OutcomeError
			t.Error = res.Error.Error()
			rep.Errored++
		case res.Fail:
			t.Outcome = OutcomeFail
			rep.Failed++
		default:
			t.Outcome = OutcomePass
			rep.Passed++
		}
		rep.Tests = append(rep.Tests, t)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("run the Rego unit tests of %s: %w", cmpOr(dir, "the embedded default bundle"), err)
	}
	slices.SortFunc(rep.Tests, func(a, b TestResult) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return strings.Compare(a.Name, b.Name)
	})
	return rep, nil
}
