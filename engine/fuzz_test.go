package engine_test

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzDecide feeds arbitrary form bodies through callback parsing and the example rules:
// no panic, always a decision with valid JSON, on_error whenever the environment can't be
// built, and the indexed Decide agreeing with Explain.
func FuzzDecide(f *testing.F) {
	forms, _ := filepath.Glob("../testdata/example/cases/*.form")
	for _, path := range forms {
		data, _ := os.ReadFile(path)
		f.Add(strings.TrimSpace(string(data)))
	}
	f.Add(`TaskAttributes={"call_sid":"CA1","vip":true}&WorkerAttributes={}`)
	f.Add(`TaskAttributes={"channel":"chat"}&WorkerAttributes={"open_chats":"3"}&TaskAge=-1&TaskPriority=99999999999999999999`)
	f.Add(`TaskAttributes={"customer":{"tier":"gold"}}&WorkerAttributes={"contact_uri":"\u2028"}&TaskPriority=10`)
	f.Add(`TaskAttributes={"type":"callback"}&WorkerAttributes={"contact_uri":null}`)
	f.Add(`TaskAttributes=%ff%fe&WorkerAttributes=[]`)
	e := newEngine(f, string(mustRead(f, "../testdata/example/rules.yaml")))
	f.Fuzz(func(t *testing.T, body string) {
		params, err := url.ParseQuery(body)
		if err != nil {
			return // the server answers 400 before deciding
		}
		d := e.Decide(params, time.Time{})
		if !json.Valid(d.Response()) || !json.Valid(d.Answer()) {
			t.Fatalf("invalid JSON: response %q answer %q", d.Response(), d.Answer())
		}
		if why := undecidable(params); why != "" && d.Rule != "on_error" {
			t.Fatalf("%s, but decided by %s", why, d.Rule)
		}
		if full := e.Explain(params, time.Time{}); full.Rule != d.Rule || string(full.Response()) != string(d.Response()) {
			t.Fatalf("Decide = %s %s; Explain = %s %s", d.Rule, d.Response(), full.Rule, full.Response())
		}
	})
}

// undecidable says why a callback cannot be decided, judged with encoding/json and strconv
// rather than the engine's own parsing: attributes missing or not a JSON object, or a
// TaskAge or TaskPriority that is not an integer.
func undecidable(params url.Values) string {
	for _, name := range []string{"TaskAttributes", "WorkerAttributes"} {
		var m map[string]any
		if vs := params[name]; len(vs) == 0 || json.Unmarshal([]byte(vs[0]), &m) != nil || m == nil {
			return name + " is missing or not a JSON object"
		}
	}
	for _, name := range []string{"TaskAge", "TaskPriority"} {
		if v := params.Get(name); v != "" {
			if _, err := strconv.Atoi(v); err != nil {
				return name + " is not an integer"
			}
		}
	}
	return ""
}
