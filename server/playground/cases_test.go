package playground_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/server/playground"
)

// GET /cases lists every golden case with its callback and its golden file; a case file
// that does not parse is listed with its located error. Deciding a listed case with its
// golden file passes; with a golden file it does not meet, the answer holds the JSON diff.
func TestCasesLoadAndDecide(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest("GET", h.srv.URL+"/cases", nil)
	status, got := h.do(t, req)
	if status != 200 {
		t.Fatalf("GET /cases = %d %v", status, got)
	}
	all, err := cases.Load(exampleCases)
	if err != nil {
		t.Fatal(err)
	}
	list := got["cases"].([]any)
	if len(list) != len(all) || got["gate"] != false {
		t.Fatalf("GET /cases lists %d cases, gate %v; want the %d example cases, not a gate", len(list), got["gate"], len(all))
	}
	var chat map[string]any
	for _, c := range list {
		if c.(map[string]any)["name"] == "chat" {
			chat = c.(map[string]any)
		}
	}
	if chat == nil {
		t.Fatalf("GET /cases has no chat case: %v", list)
	}
	if g := chat["golden"].(map[string]any); g["rule"] != "chat-and-sms" {
		t.Errorf("chat's golden = %v; want rule chat-and-sms", g)
	}
	form, err := url.ParseQuery(chat["form"].(string))
	if err != nil || !strings.Contains(form.Get("TaskAttributes"), `"chat"`) {
		t.Errorf("chat's form = %q; want its callback", chat["form"])
	}

	// Decided with its golden file: it passes.
	status, d := h.post(t, "/decide", mustJSON(map[string]any{"form": chat["form"], "golden": chat["golden"]}))
	if status != 200 || d["golden"].(map[string]any)["passed"] != true {
		t.Errorf("/decide chat with its golden file = %d %v; want it passed", status, d)
	}
	// With another golden file: the diff, in JSON lines.
	wrong := map[string]any{"rule": "default", "response": map[string]any{}, "rest": nil}
	status, d = h.post(t, "/decide", mustJSON(map[string]any{"form": chat["form"], "golden": wrong}))
	g := d["golden"].(map[string]any)
	if status != 200 || g["passed"] != false || !strings.Contains(g["diff"].(string), `-   "rule": "default",`) || !strings.Contains(g["diff"].(string), `+   "rule": "chat-and-sms",`) {
		t.Errorf("/decide chat with a wrong golden file = %d %v; want the JSON line diff", status, d)
	}
	if status, d := h.post(t, "/decide", `{"form": "TaskAttributes=%7B%7D", "golden": {"rule": "x"}}`); status != 400 {
		t.Errorf("/decide with a golden file without response = %d %v; want 400", status, d)
	}

	// A case that does not parse is listed, located.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("TaskAttributes: {channel: chat\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "typo.yaml"), []byte("TaskAtributes: {}\n"), 0o644)
	h = newHarness(t, func(o *playground.Options) { o.CaseDirs, o.Gate = []string{dir}, true })
	req, _ = http.NewRequest("GET", h.srv.URL+"/cases", nil)
	_, got = h.do(t, req)
	list = got["cases"].([]any)
	if len(list) != 2 || got["gate"] != true {
		t.Fatalf("GET /cases = %v; want two cases of a gate", got)
	}
	broken, typo := list[0].(map[string]any), list[1].(map[string]any)
	if !strings.HasPrefix(broken["error"].(string), filepath.Join(dir, "broken.yaml")+":1:1: invalid YAML") || broken["form"] != nil {
		t.Errorf("broken case = %v; want its located error and no callback", broken)
	}
	if w := typo["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), `(did you mean TaskAttributes?)`) || typo["golden"] != nil || typo["golden_error"] == "" {
		t.Errorf("case with a typo = %v; want its warning and that it has no golden file", typo)
	}
}

// POST /case writes a callback as a .yaml case, attributes as mappings, which reads back as
// the same callback.
func TestSaveCase(t *testing.T) {
	h := newHarness(t)
	form := "ReservationSid=WR0123456789abcdef0123456789abcdef&TaskAge=30&TaskAttributes=%7B%22channel%22%3A%22chat%22%2C%22phone%22%3A%22%2B15551230000%22%7D&WorkerAttributes=%7B%22open_chats%22%3A2%7D"
	status, got := h.post(t, "/case", mustJSON(map[string]any{"form": form}))
	if status != 200 || got["file"] != "WR0123456789abcdef0123456789abcdef.yaml" {
		t.Fatalf("/case = %d %v; want the case, named after the reservation", status, got)
	}
	text := got["yaml"].(string)
	for _, want := range []string{"TaskAttributes:\n  channel: chat\n  phone: \"+15551230000\"\n", "WorkerAttributes:\n  open_chats: 2\n", "TaskAge: 30\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("the case lacks %q:\n%s", want, text)
		}
	}
	params, warnings, err := cases.Parse("c.yaml", []byte(text))
	if err != nil || len(warnings) > 0 {
		t.Fatalf("the saved case does not parse cleanly: %v %v\n%s", err, warnings, text)
	}
	sent, _ := url.ParseQuery(form)
	for k := range sent {
		var a, b any
		if json.Unmarshal([]byte(params.Get(k)), &a) == nil && json.Unmarshal([]byte(sent.Get(k)), &b) == nil {
			if mustJSON(a) != mustJSON(b) {
				t.Errorf("%s read back as %s; want %s", k, params.Get(k), sent.Get(k))
			}
		} else if params.Get(k) != sent.Get(k) {
			t.Errorf("%s read back as %q; want %q", k, params.Get(k), sent.Get(k))
		}
	}

	if _, got := h.post(t, "/case", `{"params": {"TaskAttributes": {"a": 1}}, "name": "voice/vip.yaml"}`); got["file"] != "vip.yaml" {
		t.Errorf("/case with a name = %v; want vip.yaml", got)
	}
	if status, got := h.post(t, "/case", `{"params": {}, "name": "../.."}`); status != 400 {
		t.Errorf("/case with a bad name = %d %v; want 400", status, got)
	}
	if status, got := h.post(t, "/case", `{}`); status != 400 {
		t.Errorf("/case without a callback = %d %v; want 400", status, got)
	}
}
