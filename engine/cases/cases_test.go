package cases_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/reservist/reservist/engine/cases"
)

func TestParseYAML(t *testing.T) {
	src := `TaskSid: WT1
TaskAge: 30
TaskAttributes:
  channel: chat
  skills: [a, b]
  customer: {tier: gold, vip: true}
WorkerAttributes: '{"open_chats": 2}'
Empty:
`
	got, warnings, err := cases.Parse("c.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || warnings[0].String() != `c.yaml:8:1: warning: unknown callback parameter "Empty": TaskRouter sends TaskAttributes, WorkerAttributes, TaskAge, TaskPriority, Timestamp and the SIDs (TaskSid, WorkerSid, ReservationSid, …); the rules see any other in params` {
		t.Errorf("Parse(c.yaml) warnings = %v; want one, for Empty", warnings)
	}
	want := url.Values{
		"TaskSid":          {"WT1"},
		"TaskAge":          {"30"},
		"TaskAttributes":   {`{"channel":"chat","customer":{"tier":"gold","vip":true},"skills":["a","b"]}`},
		"WorkerAttributes": {`{"open_chats": 2}`},
		"Empty":            {""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse(c.yaml) (-want +got):\n%s", diff)
	}
}

// A case file that does not parse is an error located in it, FILE:LINE:COL: columns counted
// by hand; a YAML syntax error has the line yaml.v3 gives (where the construct it could not
// finish starts) and column 1, as rules files do.
func TestParseErrors(t *testing.T) {
	tests := []struct{ path, src, want string }{
		{"c.yaml", "- a\n- b\n", "c.yaml:1:1: a case is a mapping of callback parameters"},
		{"c.yaml", "TaskSid: WT1\na: [\n", "c.yaml:2:1: invalid YAML: did not find expected node content"},
		{"c.yaml", "TaskAttributes:\n  channel: chat\n WorkerAttributes: {}\n", "c.yaml:2:1: invalid YAML: did not find expected key"},
		{"c.yaml", "[a]: 1\n", "c.yaml:1:1: a parameter's name is a plain word"},
		{"c.form", "a=%zz", "c.form:1:3: not a form body: a bad escape: % must be followed by two hex digits"},
		{"c.form", "\n\n  TaskSid=WT1&a=%7", "c.form:3:17: not a form body: a bad escape"},
		{"c.form", "a=1;b=2", "c.form:1:4: not a form body: a ; between parameters"},
		{"c.json", "{}", "c.json:1:1: a case file ends in .yaml (parameters as a mapping) or .form"},
	}
	for _, tt := range tests {
		_, _, err := cases.Parse(tt.path, []byte(tt.src))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%s, %q) error = %v; want it to start %q", tt.path, tt.src, err, tt.want)
		}
	}
}

// A .yaml key that is no callback parameter is a warning at the key, with the parameter
// meant when it is a near miss; a key given twice is one too. Known names, in any spelling
// TaskRouter uses, are not.
func TestParseWarnings(t *testing.T) {
	src := `TaskSid: WT1
ReservationSid: WR1
TaskAtributes: {channel: chat}
WorkerAttributes: {}
taskage: 3
TaskSid: WT2
TaskChannelUniqueName: voice
`
	got, warnings, err := cases.Parse("cases/x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, w := range warnings {
		lines = append(lines, w.String())
	}
	want := []string{
		`cases/x.yaml:3:1: warning: unknown callback parameter "TaskAtributes" (did you mean TaskAttributes?)`,
		`cases/x.yaml:5:1: warning: unknown callback parameter "taskage" (did you mean TaskAge?)`,
		`cases/x.yaml:6:1: warning: TaskSid is given twice; the last one counts`,
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if got.Get("TaskSid") != "WT2" || got.Get("TaskAtributes") != `{"channel":"chat"}` {
		t.Errorf("params = %v; want the misspelt key kept as written and the last TaskSid", got)
	}
	// A .form case is what TaskRouter sent: whatever it holds is not a typo.
	if _, warnings, err := cases.Parse("c.form", []byte("Extra=1&TaskAttributes=%7B%7D")); err != nil || len(warnings) != 0 {
		t.Errorf("Parse(c.form) = %v, %v; want no warnings", warnings, err)
	}
}

func TestParseForm(t *testing.T) {
	got, _, err := cases.Parse("c.form", []byte("TaskAttributes=%7B%7D&TaskAge=3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(url.Values{"TaskAttributes": {"{}"}, "TaskAge": {"3"}}, got); diff != "" {
		t.Errorf("Parse(c.form) (-want +got):\n%s", diff)
	}
}

// Goldens are compared by meaning: JSON key order, 2s and 2000ms, a one-item list and its
// string are the same decision.
func TestDiffByMeaning(t *testing.T) {
	want := &cases.Golden{Rule: "r", Response: []byte(`{"a":1,"instruction":"x"}`),
		REST: &cases.REST{Delay: "2s", Params: map[string]any{"E": []any{"a"}, "F": []any{"b", "c"}}}}
	same := &cases.Golden{Rule: "r", Response: []byte(`{"instruction":"x", "a":1.0}`),
		REST: &cases.REST{Delay: "2000ms", Params: map[string]any{"E": "a", "F": []string{"b", "c"}}}}
	if d, err := cases.Diff(want, same); err != nil || d != "" {
		t.Errorf("Diff of equal decisions = %q, %v; want none", d, err)
	}
	for name, other := range map[string]*cases.Golden{
		"rule":     {Rule: "s", Response: same.Response, REST: same.REST},
		"response": {Rule: "r", Response: []byte(`{"instruction":"y","a":1}`), REST: same.REST},
		"delay":    {Rule: "r", Response: same.Response, REST: &cases.REST{Delay: "3s", Params: same.REST.Params}},
		"order":    {Rule: "r", Response: same.Response, REST: &cases.REST{Delay: "2s", Params: map[string]any{"E": "a", "F": []any{"c", "b"}}}},
		"no rest":  {Rule: "r", Response: same.Response},
	} {
		if d, err := cases.Diff(want, other); err != nil || d == "" {
			t.Errorf("Diff with another %s = %q, %v; want a difference", name, d, err)
		}
	}
	if _, err := cases.Diff(want, &cases.Golden{Rule: "r", Response: []byte(`{`)}); err == nil {
		t.Error("Diff with a response that is not JSON: no error")
	}
}

func TestReadGoldenIsStrict(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"extra.golden.json":       `{"rule":"r","response":{},"rest":null,"note":"x"}`,
		"no-response.golden.json": `{"rule":"r","rest":null}`,
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := cases.ReadGolden(path); err == nil {
			t.Errorf("ReadGolden(%s) accepted %s", name, src)
		}
	}
}

func TestLoadFindsCasesRecursively(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.yaml", "sub/b.form", "a.golden.json", "notes.txt"} {
		path := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte("TaskAttributes: {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "sub/b.form"), []byte("TaskAttributes=%7B%7D"), 0o644)
	cs, err := cases.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name+" "+filepath.Base(c.Golden))
	}
	if diff := cmp.Diff([]string{"a a.golden.json", "sub/b b.golden.json"}, names); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}
