package policies

import (
	"bytes"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

// TestRegoIsFormatted keeps the default bundle in `opa fmt` style.
func TestRegoIsFormatted(t *testing.T) {
	files, err := readEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !strings.HasSuffix(f.Name, ".rego") {
			continue
		}
		got, err := format.SourceWithOpts(f.Name, f.Data, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
			continue
		}
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s is not formatted (opa fmt); formatted:\n%s", f.Name, got)
		}
	}
}
