// Package testkit is what the tests of every package share: Twilio's signature computed
// apart from the code under test, callbacks as TaskRouter sends them, a log buffer safe for
// concurrent use, polling with a deadline, and the rules fixtures under testdata/rules.
package testkit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sign computes X-Twilio-Signature as Twilio documents it (docs/taskrouter.md): HMAC-SHA1
// with the auth token over the URL followed by every POST parameter's name and first value,
// sorted by name, in base64. It is written apart from server.Validator so that tests can hold
// one to the other.
func Sign(token, rawURL string, params url.Values) string {
	var b strings.Builder
	b.WriteString(rawURL)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range params {
			if !yield(k) {
				return
			}
		}
	}) {
		b.WriteString(k)
		b.WriteString(params[k][0])
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Sid is a SID with a two-letter prefix whose 32 hex digits count n.
func Sid(prefix string, n uint64) string { return fmt.Sprintf("%s%032x", prefix, n) }

// The SIDs Callback fills in.
var (
	AccountSid   = Sid("AC", 1) // the fake TaskRouter's own
	WorkspaceSid = Sid("WS", 1)
	WorkflowSid  = Sid("WW", 2)
	TaskQueueSid = Sid("WQ", 3)
	WorkerSid    = Sid("WK", 4)
)

// Callback is an assignment callback as TaskRouter sends it for reservation (and task) n,
// with the given task attributes and a worker whose contact_uri is client:alice. Its
// Timestamp is the second it is built, as TaskRouter's is the moment it made the
// reservation: an outbox action's delay and deadline count from it.
func Callback(n uint64, taskAttributes string) url.Values {
	return CallbackWith(n, taskAttributes, `{"contact_uri":"client:alice"}`)
}

// CallbackWith is Callback with the given worker attributes; "-" for either leaves that
// parameter out.
func CallbackWith(n uint64, taskAttributes, workerAttributes string) url.Values {
	p := url.Values{
		"AccountSid":       {AccountSid},
		"WorkspaceSid":     {WorkspaceSid},
		"WorkflowSid":      {WorkflowSid},
		"TaskQueueSid":     {TaskQueueSid},
		"TaskSid":          {Sid("WT", n)},
		"TaskAge":          {"3"},
		"TaskPriority":     {"0"},
		"TaskAttributes":   {taskAttributes},
		"WorkerSid":        {WorkerSid},
		"WorkerAttributes": {workerAttributes},
		"ReservationSid":   {Sid("WR", n)},
		"Timestamp":        {strconv.FormatInt(time.Now().Unix(), 10)},
	}
	for _, k := range []string{"TaskAttributes", "WorkerAttributes"} {
		if p.Get(k) == "-" {
			delete(p, k)
		}
	}
	return p
}

// LogBuffer collects log output; it is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Records returns the JSON log records whose msg is msg; other lines are skipped.
func (l *LogBuffer) Records(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// Eventually polls cond until it holds, failing the test after ten seconds: for what
// happens after the step a test can wait on.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Root is the repository's root directory: the nearest directory above the working
// directory (a test's package directory) that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Path is a file of the repository, named from its root.
func Path(t testing.TB, rel string) string {
	t.Helper()
	return filepath.Join(Root(t), filepath.FromSlash(rel))
}

// Read returns a file of the repository, named from its root.
func Read(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Rules returns the rules fixture testdata/rules/NAME.yaml.
func Rules(t testing.TB, name string) string {
	t.Helper()
	return Read(t, "testdata/rules/"+name+".yaml")
}

// Post sends params as a form callback to u, signed with token as TaskRouter signs (unsigned
// when token is empty), and returns the status and the body.
func Post(t testing.TB, u, token string, params url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("X-Twilio-Signature", Sign(token, u, params))
	}
	return Do(t, req)
}

// Do sends req and returns the status and the body, which must be JSON: every answer of
// reservist's listeners but /metrics and the playground's page is.
func Do(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q; want application/json", req.Method, req.URL.Path, ct)
	}
	return resp.StatusCode, string(b)
}
