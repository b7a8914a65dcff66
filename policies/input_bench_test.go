package policies

import "testing"

// BenchmarkInputValue is the conversion of the typical input to the
// evaluator's AST, which every decision pays before evaluating a rule.
func BenchmarkInputValue(b *testing.B) {
	in := TypicalInput()
	b.ReportAllocs()
	for b.Loop() {
		_ = in.value()
	}
}
