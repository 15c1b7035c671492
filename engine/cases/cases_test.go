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
	got, err := cases.Parse("c.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
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

func TestParseErrors(t *testing.T) {
	tests := []struct{ path, src, want string }{
		{"c.yaml", "- a\n- b\n", "c.yaml:1:1: a case is a mapping of callback parameters"},
		{"c.yaml", "a: [\n", "c.yaml: yaml:"},
		{"c.form", "a=%zz", "c.form: not a form body"},
		{"c.json", "{}", "a case file ends in .yaml or .form"},
	}
	for _, tt := range tests {
		_, err := cases.Parse(tt.path, []byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%s, %q) error = %v; want it to contain %q", tt.path, tt.src, err, tt.want)
		}
	}
}

func TestParseForm(t *testing.T) {
	got, err := cases.Parse("c.form", []byte("TaskAttributes=%7B%7D&TaskAge=3\n"))
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
