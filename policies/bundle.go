package policies

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// defaultBundle is the default bundle, compiled into the binary. It is read-only.
//
//go:embed *.rego data.json
var defaultBundle embed.FS

// Entrypoint is the rule every bundle must define: the decision for one step.
const Entrypoint = "data.reins.policy.decision"

// ConfigProblems is the rule a bundle may define to check its own data: a set
// of sentences, one per problem. The engine evaluates it once when it loads the
// bundle and refuses the bundle if the set is not empty, so that data a rule
// relies on cannot silently turn the rule off; decisions do not evaluate it.
const ConfigProblems = "data.reins.policy.config_problems"

// DataFile is the name of a bundle's data document.
const DataFile = "data.json"

// Limits on a bundle folder, so that a stray file cannot exhaust memory.
const (
	// MaxBundleFiles is the most files a bundle may hold.
	MaxBundleFiles = 1000
	// MaxBundleBytes is the most bytes all of a bundle's files may hold together.
	MaxBundleBytes = 32 << 20
)

// digestDomain starts every bundle digest, so that it never collides with
// another kind of reins digest.
const digestDomain = "reins.policy.bundle.v1"

// bundleFile is one file of a bundle.
type bundleFile struct {
	// Name is the file's name inside the bundle folder, e.g. "decision.rego".
	Name string
	// Path is where the file was read from, for error messages: the full path
	// for a folder, the bare name for the embedded bundle.
	Path string
	Data []byte
}

// isBundleFile reports whether name belongs to a bundle: a *.rego file
// (including *_test.rego) or data.json. Hidden files never do.
func isBundleFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	return name == DataFile || strings.HasSuffix(name, ".rego")
}

// readBundle reads the bundle's files: from dir, or the embedded default bundle
// when dir is "". The files come back sorted by name.
func readBundle(dir string) ([]bundleFile, error) {
	if dir == "" {
		return readEmbedded()
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &BundleError{Dir: dir, Problems: []Problem{{File: dir,
			Message: fmt.Sprintf("cannot read the bundle folder: %v; create it (reins can write the default bundle there) or point the policy dir elsewhere", unwrapPathError(err))}}}
	}
	var files []bundleFile
	total := 0
	for _, ent := range entries {
		name := ent.Name()
		if !isBundleFile(name) {
			continue
		}
		path := filepath.Join(dir, name)
		// Follow symlinks (a Kubernetes ConfigMap volume links every file);
		// sub-folders are not part of a bundle.
		info, err := os.Stat(path)
		if err != nil {
			return nil, &BundleError{Dir: dir, Problems: []Problem{{File: path, Message: fmt.Sprintf("cannot read: %v", unwrapPathError(err))}}}
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if len(files) == MaxBundleFiles {
			return nil, &BundleError{Dir: dir, Problems: []Problem{{File: dir, Message: fmt.Sprintf("holds more than %d bundle files; keep only the bundle in this folder", MaxBundleFiles)}}}
		}
		data, err := readLimited(path, MaxBundleBytes-total)
		if err != nil {
			return nil, &BundleError{Dir: dir, Problems: []Problem{{File: path, Message: err.Error()}}}
		}
		total += len(data)
		files = append(files, bundleFile{Name: name, Path: path, Data: data})
	}
	// os.ReadDir sorts by name already; sort again so the digest does not
	// depend on it.
	slices.SortFunc(files, func(a, b bundleFile) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

func readEmbedded() ([]bundleFile, error) {
	entries, err := defaultBundle.ReadDir(".")
	if err != nil {
		return nil, fmt.Errorf("read the embedded default bundle: %w; the binary is broken, rebuild it", err)
	}
	var files []bundleFile
	for _, ent := range entries {
		if ent.IsDir() || !isBundleFile(ent.Name()) {
			continue
		}
		data, err := defaultBundle.ReadFile(ent.Name())
		if err != nil {
			return nil, fmt.Errorf("read the embedded default bundle: %w; the binary is broken, rebuild it", err)
		}
		files = append(files, bundleFile{Name: ent.Name(), Path: ent.Name(), Data: data})
	}
	slices.SortFunc(files, func(a, b bundleFile) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// readLimited reads the file at path, refusing it if it holds more than max bytes.
func readLimited(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %v", unwrapPathError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %v", unwrapPathError(err))
	}
	if len(data) > max {
		return nil, fmt.Errorf("the bundle is larger than %d bytes; keep only the bundle in its folder", MaxBundleBytes)
	}
	return data, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// bundleDigest is the bundle's SHA-256, in hex, over its files in a canonical
// order. It is defined as
//
//	SHA-256( "reins.policy.bundle.v1" 0x00
//	         for each file, in ascending byte order of its name:
//	           name 0x00  uint64 big-endian length of the content  content )
//
// where the files are the bundle's *.rego files (tests included) and its
// data.json, named without their folder. The same files give the same digest
// wherever they are, embedded or in a folder; a changed, added, removed or
// renamed file changes it.
func bundleDigest(files []bundleFile) string {
	h := sha256.New()
	h.Write([]byte(digestDomain))
	h.Write([]byte{0})
	var n [8]byte
	for _, f := range files {
		h.Write([]byte(f.Name))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(n[:], uint64(len(f.Data)))
		h.Write(n[:])
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Problem is one thing wrong with a bundle, located as precisely as known.
type Problem struct {
	// File is the file's path (or the bundle folder's, for problems with the folder).
	File string `json:"file"`
	// Line and Column are 1-based; 0 when unknown.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// String is "file:line:column: message", leaving out what is unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
		if p.Column > 0 {
			b.WriteString(":" + strconv.Itoa(p.Column))
		}
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	return b.String()
}

// BundleError is a bundle that cannot be read or compiled. It is refused: the
// last good bundle stays in force.
type BundleError struct {
	// Dir is the bundle folder; "" for the embedded default bundle.
	Dir string `json:"dir"`
	// Problems are sorted by file, line and column.
	Problems []Problem `json:"problems"`
}

func (e *BundleError) Error() string {
	where := "the embedded default policy bundle"
	if e.Dir != "" {
		where = "policy bundle " + e.Dir
	}
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.String()
	}
	return where + " refused: " + strings.Join(msgs, "; ") + "; fix it (reins policy test --dir shows the problems)"
}

// loaded is a bundle read and parsed, ready to compile.
type loaded struct {
	dir     string
	digest  string
	files   []bundleFile
	modules map[string]*ast.Module
	data    ast.Object
}

// parserOptions parse Rego v1 (OPA 1.x syntax: if, contains, every).
func parserOptions() ast.ParserOptions {
	return ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
}

// parseBundle parses every file of the bundle, collecting every problem.
func parseBundle(dir string, files []bundleFile) (*loaded, error) {
	l := &loaded{dir: dir, digest: bundleDigest(files), files: files, modules: map[string]*ast.Module{}}
	var problems []Problem
	regoFiles := 0
	for _, f := range files {
		if f.Name == DataFile {
			data, p := parseData(f)
			if p != nil {
				problems = append(problems, *p)
			}
			l.data = data
			continue
		}
		regoFiles++
		mod, err := ast.ParseModuleWithOpts(f.Path, string(f.Data), parserOptions())
		if err != nil {
			problems = append(problems, astProblems(f.Path, err)...)
			continue
		}
		if mod == nil {
			problems = append(problems, Problem{File: f.Path, Message: "holds no Rego module; start it with a package line or remove it"})
			continue
		}
		l.modules[f.Path] = mod
	}
	if regoFiles == 0 && len(problems) == 0 {
		problems = append(problems, Problem{File: cmpOr(dir, "embedded bundle"), Message: "holds no .rego file; a bundle needs at least the rule " + Entrypoint})
	}
	if l.data == nil {
		l.data = ast.NewObject()
	}
	if len(problems) > 0 {
		return nil, &BundleError{Dir: dir, Problems: sortProblems(problems)}
	}
	return l, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// parseData parses data.json, which must be one JSON object.
func parseData(f bundleFile) (ast.Object, *Problem) {
	dec := json.NewDecoder(bytes.NewReader(f.Data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		p := Problem{File: f.Path, Message: "is not valid JSON: " + err.Error()}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			p.Line, p.Column = lineCol(f.Data, se.Offset)
		case errors.As(err, &te):
			p.Line, p.Column = lineCol(f.Data, te.Offset)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			p.Line, p.Column = lineCol(f.Data, int64(len(f.Data)))
		}
		return nil, &p
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		line, col := lineCol(f.Data, dec.InputOffset())
		return nil, &Problem{File: f.Path, Line: line, Column: col, Message: "has data after the JSON object; keep exactly one object"}
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, &Problem{File: f.Path, Line: 1, Column: 1, Message: "must hold one JSON object, e.g. {\"reins\": {\"config\": {...}}}"}
	}
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		return nil, &Problem{File: f.Path, Message: "cannot be converted for the policy: " + err.Error()}
	}
	obj, ok := val.(ast.Object)
	if !ok {
		return nil, &Problem{File: f.Path, Line: 1, Column: 1, Message: "must hold one JSON object"}
	}
	return obj, nil
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, offset int64) (int, int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	if offset < 1 {
		return 1, 1
	}
	before := data[:offset]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return line, col
}

// astProblems turns parser or compiler errors into Problems.
func astProblems(file string, err error) []Problem {
	var errs ast.Errors
	if !errors.As(err, &errs) {
		var one *ast.Error
		if errors.As(err, &one) {
			errs = ast.Errors{one}
		} else {
			return []Problem{{File: file, Message: err.Error()}}
		}
	}
	out := make([]Problem, 0, len(errs))
	for _, e := range errs {
		p := Problem{File: file, Message: e.Message}
		if e.Code != "" {
			p.Message = e.Code + ": " + e.Message
		}
		if e.Location != nil {
			if e.Location.File != "" {
				p.File = e.Location.File
			}
			p.Line, p.Column = e.Location.Row, e.Location.Col
		}
		out = append(out, p)
	}
	return out
}

func sortProblems(ps []Problem) []Problem {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return ps
}

// capabilities are the built-in functions a bundle may call: OPA's, without
// those that reach the network. A decision must depend only on its input and
// the bundle, and must stay fast.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool {
		switch b.Name {
		case "http.send", "net.lookup_ip_addr", "opa.runtime":
			return true
		}
		return false
	})
	return caps
}

// newCompiler is the compiler for both decisions and unit tests.
func newCompiler(printStatements bool) *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(printStatements)
}

// compile compiles the modules; errors name file:line.
func (l *loaded) compile(printStatements bool) (*ast.Compiler, error) {
	c := newCompiler(printStatements)
	if c.Compile(l.modules); c.Failed() {
		return nil, &BundleError{Dir: l.dir, Problems: sortProblems(astProblems(cmpOr(l.dir, "embedded bundle"), c.Errors))}
	}
	return c, nil
}

// store is a fresh in-memory store holding a copy of the bundle's data.
func (l *loaded) store() storage.Store {
	return inmem.NewFromASTObject(l.data.Copy())
}

// prepared is a compiled bundle, ready to decide.
type prepared struct {
	digest string
	dir    string
	query  rego.PreparedEvalQuery
}

// prepare compiles the bundle and prepares the decision query once; every
// decision reuses it.
func (l *loaded) prepare(ctx context.Context) (*prepared, error) {
	c, err := l.compile(false)
	if err != nil {
		return nil, err
	}
	q, err := l.decisionQuery(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := l.checkConfig(ctx, c); err != nil {
		return nil, err
	}
	return &prepared{digest: l.digest, dir: l.dir, query: q}, nil
}

// decisionQuery prepares the query of Entrypoint on the compiled bundle.
func (l *loaded) decisionQuery(ctx context.Context, c *ast.Compiler) (rego.PreparedEvalQuery, error) {
	q, err := rego.New(
		rego.Query(Entrypoint),
		rego.Compiler(c),
		rego.Store(l.store()),
		// A built-in that fails (a bad time string, a division by zero) is an
		// evaluation error, so a deny rule can never silently not fire.
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return q, &BundleError{Dir: l.dir, Problems: sortProblems(astProblems(cmpOr(l.dir, "embedded bundle"), err))}
	}
	return q, nil
}

// checkConfig evaluates ConfigProblems once and refuses the bundle if it
// lists any problem (or fails).
func (l *loaded) checkConfig(ctx context.Context, c *ast.Compiler) error {
	dataFile := DataFile
	for _, f := range l.files {
		if f.Name == DataFile {
			dataFile = f.Path
		}
	}
	refuse := func(msgs ...string) error {
		ps := make([]Problem, len(msgs))
		for i, m := range msgs {
			ps[i] = Problem{File: dataFile, Message: m}
		}
		return &BundleError{Dir: l.dir, Problems: ps}
	}
	rs, err := rego.New(
		rego.Query(ConfigProblems),
		rego.Compiler(c),
		rego.Store(l.store()),
		rego.StrictBuiltinErrors(true),
	).Eval(ctx)
	if err != nil {
		return refuse(fmt.Sprintf("checking the data with %s failed: %v", ConfigProblems, err))
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil // the bundle does not check its data
	}
	list, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return refuse(fmt.Sprintf("%s must be a set of sentences, got %T", ConfigProblems, rs[0].Expressions[0].Value))
	}
	msgs := make([]string, 0, len(list))
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprintf("%v", v)
		}
		msgs = append(msgs, s)
	}
	if len(msgs) > 0 {
		return refuse(msgs...)
	}
	return nil
}

func loadFiles(ctx context.Context, dir string, files []bundleFile) (*prepared, error) {
	l, err := parseBundle(dir, files)
	if err != nil {
		return nil, err
	}
	return l.prepare(ctx)
}
