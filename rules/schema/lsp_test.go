package schema_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/rules/schema"
)

// yamlLanguageServer is the version of npm's yaml-language-server the schema is tried in:
// the server behind VS Code's YAML extension and most editors' YAML support. 1.x runs on
// Node 20; 2.x wants Node 22.
const yamlLanguageServer = "1.25.0"

// languageServer finds or installs yaml-language-server and returns the command that runs
// it over stdio. YAML_LANGUAGE_SERVER names one already installed; otherwise npm installs
// the pinned version once into the user's cache directory. Without node and npm the test is
// skipped, except in CI (CI=true), where that is a failure.
func languageServer(t *testing.T) []string {
	t.Helper()
	missing := func(msg string) {
		msg += ": install Node.js and npm (.ci/run does) to try the schema in yaml-language-server"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("no node on PATH")
	}
	if bin := os.Getenv("YAML_LANGUAGE_SERVER"); bin != "" {
		return []string{node, bin, "--stdio"}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	prefix := filepath.Join(cache, "reservist-tests", "yaml-language-server@"+yamlLanguageServer)
	bin := filepath.Join(prefix, "node_modules", "yaml-language-server", "bin", "yaml-language-server")
	if _, err := os.Stat(bin); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			missing("no npm on PATH")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// Into a directory of its own, then renamed into place: two test runs at once must
		// not see half an install.
		tmp, err := os.MkdirTemp(filepath.Dir(prefix), "install-")
		if err != nil {
			if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
				t.Fatal(err)
			}
			if tmp, err = os.MkdirTemp(filepath.Dir(prefix), "install-"); err != nil {
				t.Fatal(err)
			}
		}
		defer os.RemoveAll(tmp)
		cmd := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--no-save", "--loglevel=error", "yaml-language-server@"+yamlLanguageServer)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install yaml-language-server@%s: %v\n%s", yamlLanguageServer, err, out)
		}
		if err := os.Rename(tmp, prefix); err != nil && !os.IsExist(err) {
			if _, statErr := os.Stat(bin); statErr != nil {
				t.Fatalf("install yaml-language-server: %v", err)
			}
		}
	}
	return []string{node, bin, "--stdio"}
}

// lspClient speaks the Language Server Protocol to one server over its stdin and stdout.
type lspClient struct {
	t      *testing.T
	in     io.WriteCloser
	cmd    *exec.Cmd
	mu     sync.Mutex
	nextID int
	calls  map[int]chan json.RawMessage
	diags  map[string]chan []lspDiagnostic // by document URI
	closed chan struct{}
}

type lspDiagnostic struct {
	Range struct {
		Start struct{ Line, Character int }
	}
	Message string
	Source  string
}

type lspMessage struct {
	ID     *json.RawMessage `json:"id,omitempty"`
	Method string           `json:"method,omitempty"`
	Params json.RawMessage  `json:"params,omitempty"`
	Result json.RawMessage  `json:"result,omitempty"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// settings are what the client answers the server's workspace/configuration requests with:
// validation, hover and completion on, and schemas from the documents' modelines only.
var settings = map[string]any{
	"validate": true, "hover": true, "completion": true, "format": map[string]any{"enable": false},
	"schemaStore": map[string]any{"enable": false}, "schemas": map[string]any{},
}

func startLanguageServer(t *testing.T, root string) *lspClient {
	t.Helper()
	argv := languageServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	cmd.Stderr = io.Discard
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start yaml-language-server: %v", err)
	}
	c := &lspClient{t: t, in: in, cmd: cmd, calls: map[int]chan json.RawMessage{}, diags: map[string]chan []lspDiagnostic{}, closed: make(chan struct{})}
	go c.read(bufio.NewReader(out))
	t.Cleanup(func() {
		c.call("shutdown", nil)
		c.notify("exit", nil)
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	rootURI := fileURI(root)
	c.call("initialize", map[string]any{
		"processId": os.Getpid(), "rootUri": rootURI,
		"workspaceFolders": []any{map[string]any{"uri": rootURI, "name": "rules"}},
		"capabilities": map[string]any{
			"workspace": map[string]any{"configuration": true},
			"textDocument": map[string]any{
				"publishDiagnostics": map[string]any{},
				"completion":         map[string]any{"completionItem": map[string]any{"documentationFormat": []string{"plaintext"}}},
			},
		},
	})
	c.notify("initialized", map[string]any{})
	c.notify("workspace/didChangeConfiguration", map[string]any{"settings": map[string]any{"yaml": settings}})
	return c
}

func fileURI(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

func (c *lspClient) send(m map[string]any) {
	m["jsonrpc"] = "2.0"
	body, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.in, "Content-Length: %d\r\n\r\n%s", len(body), body)
}

func (c *lspClient) notify(method string, params any) {
	c.send(map[string]any{"method": method, "params": params})
}

// call sends a request and waits for its result.
func (c *lspClient) call(method string, params any) json.RawMessage {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan json.RawMessage, 1)
	c.calls[id] = ch
	c.mu.Unlock()
	c.send(map[string]any{"id": id, "method": method, "params": params})
	select {
	case r := <-ch:
		return r
	case <-c.closed:
		if method == "shutdown" {
			return nil
		}
		c.t.Fatalf("%s: yaml-language-server stopped", method)
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s: no answer from yaml-language-server in 30s", method)
	}
	return nil
}

// read dispatches what the server sends: answers to calls, diagnostics, and the server's
// own requests, which it answers.
func (c *lspClient) read(r *bufio.Reader) {
	defer close(c.closed)
	for {
		length := -1
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSpace(line)
			if line == "" {
				break
			}
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				length, _ = strconv.Atoi(v)
			}
		}
		if length < 0 {
			return
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var m lspMessage
		if json.Unmarshal(body, &m) != nil {
			continue
		}
		switch {
		case m.Method == "" && m.ID != nil: // an answer
			id, _ := strconv.Atoi(string(*m.ID))
			c.mu.Lock()
			ch := c.calls[id]
			delete(c.calls, id)
			c.mu.Unlock()
			if ch != nil {
				ch <- m.Result
			}
		case m.Method == "textDocument/publishDiagnostics":
			var p struct {
				URI         string          `json:"uri"`
				Diagnostics []lspDiagnostic `json:"diagnostics"`
			}
			json.Unmarshal(m.Params, &p)
			c.diagnosticsOf(p.URI) <- p.Diagnostics
		case m.ID != nil: // a request of the server's
			var result any
			if m.Method == "workspace/configuration" {
				var p struct{ Items []struct{ Section string } }
				json.Unmarshal(m.Params, &p)
				items := make([]any, len(p.Items))
				for i, it := range p.Items {
					if it.Section == "yaml" {
						items[i] = settings
					}
				}
				result = items
			}
			c.send(map[string]any{"id": m.ID, "result": result})
		}
	}
}

func (c *lspClient) diagnosticsOf(uri string) chan []lspDiagnostic {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.diags[uri]
	if ch == nil {
		ch = make(chan []lspDiagnostic, 16)
		c.diags[uri] = ch
	}
	return ch
}

// open opens a document and returns the diagnostics the server publishes for it once it
// has read the schema the document names.
func (c *lspClient) open(path, text string) []lspDiagnostic {
	c.t.Helper()
	uri := fileURI(path)
	c.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{"uri": uri, "languageId": "yaml", "version": 1, "text": text}})
	select {
	case d := <-c.diagnosticsOf(uri):
		return d
	case <-time.After(30 * time.Second):
		c.t.Fatalf("no diagnostics for %s in 30s", path)
	}
	return nil
}

// completionItem is one completion the server offers.
type completionItem struct {
	Label         string `json:"label"`
	Detail        string `json:"detail"`
	Documentation any    `json:"documentation"`
}

// complete asks for the completions at line:char (0-based) of an open document.
func (c *lspClient) complete(path string, line, char int) []completionItem {
	c.t.Helper()
	raw := c.call("textDocument/completion", map[string]any{
		"textDocument": map[string]any{"uri": fileURI(path)},
		"position":     map[string]any{"line": line, "character": char},
	})
	var list struct {
		Items []completionItem `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil || list.Items == nil {
		var items []completionItem
		if json.Unmarshal(raw, &items) == nil {
			return items
		}
	}
	return list.Items
}

// exampleDir is the example rules, which ship with their schema beside them.
const exampleDir = "testdata/example"

// TestExampleSchemaIsCurrent: testdata/example/rules.schema.json is what `reservist schema`
// prints, and the example rules name it on their first line, as README tells users to do.
// `go test ./rules/schema -run ExampleSchema -update` writes it again.
func TestExampleSchemaIsCurrent(t *testing.T) {
	want, err := schema.JSON()
	if err != nil {
		t.Fatal(err)
	}
	path := testkit.Path(t, exampleDir+"/rules.schema.json")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what reservist schema prints now; run go test ./rules/schema -run ExampleSchema -update", path)
	}
	first, _, _ := strings.Cut(testkit.Read(t, exampleDir+"/rules.yaml"), "\n")
	if first != "# yaml-language-server: $schema=rules.schema.json" {
		t.Errorf("%s/rules.yaml starts %q; want the yaml-language-server modeline naming rules.schema.json", exampleDir, first)
	}
}

var update = flag.Bool("update", false, "write testdata/example/rules.schema.json")

// The schema in the language server editors run: the example rules, read through their
// modeline, have no problem; a file with one mistake of each kind gets one message per
// mistake, in the validator's words (never a regular expression); completions are offered
// once each, labelled by what they add.
func TestSchemaInYAMLLanguageServer(t *testing.T) {
	example := testkit.Path(t, exampleDir)
	c := startLanguageServer(t, example)
	if d := c.open(filepath.Join(example, "rules.yaml"), testkit.Read(t, exampleDir+"/rules.yaml")); len(d) > 0 {
		t.Errorf("the example rules get %d diagnostics; want none: %+v", len(d), d)
	}

	dir := t.TempDir()
	out, err := schema.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.schema.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	const modeline = "# yaml-language-server: $schema=rules.schema.json\n"
	bad := modeline + `version: 2
timezone: America/New_Yrok
schedules:
  Support:
    hours:
      weekdays: "08:00-18:00"
      sat: "8-18"
    closed: [12/25/2026]
rules:
  - name: Bad_Name
    when: "true"
    do: reject
    with:
      activity_sid: WA123
  - name: b
    when: "true"
    do: accept
    with: {x: 1}
  - name: c
    when: "true"
    do: call
    with:
      from: "5551234"
      url: ftp://example.com
      timeout: 2000
  - name: d
    when: "true"
    do: accept
    via: response
    delay: 2s
  - name: e
    when: "true"
    do: accept
    via: sms
    delay: soon
  - name: f
    when: "true"
    do: acept
  - name: g
    when: "true"
    do: defer
    via: rest
`
	// line (1-based), message: the validator's words, one message per mistake.
	want := []string{
		`2 version must be 1`,
		`3 timezone must be a zone name; names come from the tz database, like America/New_York, Europe/London or UTC`,
		`5 a schedule name must be lower-case letters, digits and - (like support or night-desk), starting with a letter or digit`,
		`7 a day key is mon, tue, wed, thu, fri, sat or sun, a range of them like mon-fri or fri-mon, or daily`,
		`8 a range of hours is "HH:MM-HH:MM", like "08:00-18:00" or "22:00-06:00"`,
		`9 a closed date is YYYY-MM-DD, like 2026-12-25`,
		`11 a rule name must be lower-case letters, digits and - (like vip-voice), starting with a letter or digit`,
		`15 activity_sid must be a SID: WA followed by 32 hex digits, like WA0123456789abcdef0123456789abcdef, or a ${ expression }`,
		`19 accept takes no fields under with; remove with`,
		`24 from must be a phone number in E.164 form ("+15005550006"), "client:NAME" or "sip:URI", or a ${ expression }`,
		`25 url must be an absolute http(s) URL, or a ${ expression }`,
		`26 Value is above the maximum of 999.`, // yaml-language-server says a range in its own words
		`30 a delay is carried out by REST, so remove via or use via: rest`,
		`35 via must be response or rest`,
		`36 delay must be a duration like 2s or 500ms`,
		`39 do must be one of defer, accept, reject, dequeue, call, conference, redirect`,
		`43 do: defer takes no with, via or delay (it answers {} and leaves the reservation pending); remove it`,
	}
	path := filepath.Join(dir, "rules.yaml")
	var got []string
	for _, d := range c.open(path, bad) {
		got = append(got, fmt.Sprintf("%d %s", d.Range.Start.Line+1, d.Message))
	}
	slices.SortStableFunc(got, func(a, b string) int {
		la, _ := strconv.Atoi(strings.Fields(a)[0])
		lb, _ := strconv.Atoi(strings.Fields(b)[0])
		return la - lb
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("yaml-language-server's messages (-want +got):\n%s", diff)
	}
	for _, m := range got {
		if strings.Contains(m, "pattern") || strings.Contains(m, "^") || strings.Contains(m, "Expected") {
			t.Errorf("message %q shows the schema's machinery, not the validator's words", m)
		}
	}

	// Completions, each offered once.
	doc := modeline + `version: 1
rules:
  - name: a
    when: "true"
    do: call
    with:
      
  - 
  - name: b
    when: "true"
    do: 
`
	path = filepath.Join(dir, "complete.yaml")
	c.open(path, doc)
	labels := func(line, char int) []string {
		var out []string
		for _, it := range c.complete(path, line, char) {
			out = append(out, it.Label)
		}
		return out
	}
	for _, tt := range []struct {
		where       string
		line, char  int // 0-based
		must, never []string
	}{
		{"a call's with", 7, 6, []string{"from", "url", "to", "timeout", "record", "status_callback_url", "accept"}, []string{"with", "do"}},
		{"a new rule", 8, 4, []string{"name", "when", "do", "with", "via", "delay", "description"}, nil},
		{"do's value", 11, 8, rulesDoValues(), nil},
		{"the top level", 1, 0, nil, nil},
	} {
		got := labels(tt.line, tt.char)
		if len(got) == 0 {
			t.Errorf("%s: no completions", tt.where)
		}
		seen := map[string]bool{}
		for _, l := range got {
			if seen[l] {
				t.Errorf("%s: %q is offered twice: %q", tt.where, l, got)
			}
			seen[l] = true
		}
		for _, l := range tt.must {
			if !seen[l] {
				t.Errorf("%s: %q is not offered: %q", tt.where, l, got)
			}
		}
		for _, l := range tt.never {
			if seen[l] {
				t.Errorf("%s: %q is offered: %q", tt.where, l, got)
			}
		}
	}
}

func rulesDoValues() []string { return rules.DoValues() }
