package cases

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/rules"
)

func TestLineDiff(t *testing.T) {
	for _, tt := range []struct{ a, b, want string }{
		{"x\n", "x\n", "  x\n"},
		{"a\nb\nc\n", "a\nc\n", "  a\n- b\n  c\n"},
		{"a\nc\n", "a\nb\nc\n", "  a\n+ b\n  c\n"},
		{"a\nb\n", "a\nB\n", "  a\n- b\n+ B\n"},
		{"", "a\n", "- \n+ a\n"},
		{"{\n  \"rule\": \"x\",\n  \"rest\": null\n}\n", "{\n  \"rule\": \"y\",\n  \"rest\": null\n}\n",
			"  {\n-   \"rule\": \"x\",\n+   \"rule\": \"y\",\n    \"rest\": null\n  }\n"},
	} {
		if got := LineDiff(tt.a, tt.b); got != tt.want {
			t.Errorf("LineDiff(%q, %q) = %q; want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

// A golden diff is the two decisions' JSON, line by line: no Go syntax, and only the lines
// whose meaning differs are marked (2000ms is 2s, a one-item list is its item).
func TestDiffIsJSONLines(t *testing.T) {
	want := &Golden{Rule: "scheduled-callback", Response: []byte(`{}`),
		REST: &REST{Delay: "2000ms", Params: map[string]any{"Instruction": []any{"call"}, "CallTo": "+15551230000"}}}
	got := &Golden{Rule: "scheduled-callback", Response: []byte(`{}`),
		REST: &REST{Delay: "2s", Params: map[string]any{"Instruction": "call", "CallTo": "+15559990000"}}}
	d, err := Diff(want, got)
	if err != nil {
		t.Fatal(err)
	}
	wantDiff := `  {
    "rule": "scheduled-callback",
    "response": {},
    "rest": {
      "delay": "2s",
      "params": {
-       "CallTo": "+15551230000",
+       "CallTo": "+15559990000",
        "Instruction": "call"
      }
    }
  }
`
	if d != wantDiff {
		t.Errorf("Diff =\n%s\nwant\n%s", d, wantDiff)
	}
	for _, goSyntax := range []string{"map[", "string(", "cases.", "decision{"} {
		if strings.Contains(d, goSyntax) {
			t.Errorf("Diff holds Go syntax %q:\n%s", goSyntax, d)
		}
	}
}

const chatRules = "version: 1\nrules:\n  - name: chat\n    when: task.attributes.channel == \"chat\"\n    do: accept\n  - name: sms\n    when: task.attributes.channel == \"sms\"\n    do: accept\n"

// suite writes case files (and golden files, for names given one) into a directory and
// loads them.
func suite(t *testing.T, files map[string]string) (string, []*Case) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return dir, cs
}

func chatEngine(t *testing.T) *engine.Engine {
	t.Helper()
	set, err := rules.Parse("rules.yaml", []byte(chatRules))
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(set)
}

const chatGolden = `{"rule": "chat", "response": {"instruction": "accept"}, "rest": null}`

// A case that does not parse fails, located, and the others still run; warnings fail a case
// only in a strict run; a filtered run names no unreached rules.
func TestRunGoesOnPastABrokenCase(t *testing.T) {
	dir, cs := suite(t, map[string]string{
		"a-broken.yaml":      "TaskAttributes: {channel: chat\n",
		"b-chat.yaml":        "TaskAttributes: {channel: chat}\nWorkerAttributes: {}\n",
		"b-chat.golden.json": chatGolden,
		"c-typo.yaml":        "TaskAtributes: {channel: chat}\nWorkerAttributes: {}\n",
		"c-typo.golden.json": `{"rule": "on_error", "response": {}, "rest": null}`,
	})
	e := chatEngine(t)
	rep := RunWith(e, cs, Options{})
	if rep.Passed != 2 || rep.Failed != 1 {
		t.Fatalf("run = %d passed, %d failed; want 2 and 1 (the broken case)", rep.Passed, rep.Failed)
	}
	var out strings.Builder
	rep.Print(&out, true)
	broken := filepath.Join(dir, "a-broken.yaml")
	for _, want := range []string{
		"--- FAIL: a-broken (" + broken + ")\n    " + broken + ":1:1: invalid YAML: did not find expected ',' or '}'\n",
		"--- PASS: b-chat (",
		"--- PASS: c-typo (",
		"unreached: sms\n2 passed, 1 failed\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if w := rep.Warnings(); len(w) != 1 || !strings.Contains(w[0].String(), `c-typo.yaml:1:1: warning: unknown callback parameter "TaskAtributes" (did you mean TaskAttributes?)`) {
		t.Errorf("warnings = %v; want the typo, located", w)
	}

	strict := RunWith(e, cs, Options{Strict: true})
	out.Reset()
	strict.Print(&out, false)
	if strict.Passed != 1 || strict.Failed != 2 || !strings.Contains(out.String(), `--- FAIL: c-typo (`) ||
		!strings.Contains(out.String(), `c-typo.yaml:1:1: unknown callback parameter "TaskAtributes" (did you mean TaskAttributes?) (--strict)`) {
		t.Errorf("strict run = %d passed, %d failed:\n%s\nwant the typo's case failed for its warning", strict.Passed, strict.Failed, out.String())
	}

	filtered := RunWith(e, cs, Options{Filter: regexp.MustCompile("chat")})
	if filtered.Unreached != nil || filtered.Passed != 1 {
		t.Errorf("filtered run: unreached %v, %d passed; want no unreached list and b-chat passed", filtered.Unreached, filtered.Passed)
	}
}

// --update writes no golden file for a case with warnings unless told to, and none for a
// case that does not parse.
func TestUpdateRefusesCasesWithWarnings(t *testing.T) {
	dir, cs := suite(t, map[string]string{
		"broken.yaml": "- a\n",
		"typo.yaml":   "TaskAtributes: {channel: chat}\nWorkerAttributes: {}\n",
		"chat.yaml":   "TaskAttributes: {channel: chat}\nWorkerAttributes: {}\n",
	})
	e := chatEngine(t)
	written, err := RunWith(e, cs, Options{}).Update(false)
	if diff := cmp.Diff([]string{filepath.Join(dir, "chat.golden.json")}, written); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	if err == nil || !strings.Contains(err.Error(), "case typo ("+filepath.Join(dir, "typo.yaml")+") has a warning, so its golden file is not written: correct the case, or pass --strict=false") ||
		!strings.Contains(err.Error(), "case broken (") {
		t.Errorf("Update error = %v; want it to name the case with a warning and the broken one", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "typo.golden.json")); err == nil {
		t.Error("typo.golden.json written")
	}
	written, _ = RunWith(e, cs, Options{}).Update(true)
	if diff := cmp.Diff([]string{filepath.Join(dir, "typo.golden.json")}, written); diff != "" {
		t.Errorf("with warnings allowed, written (-want +got):\n%s", diff)
	}
}
