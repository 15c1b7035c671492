package reload

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records are the JSON log lines whose message starts with prefix.
func (b *lockedBuffer) records(t *testing.T, prefix string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// A reload that brings the rules back to good after failed ones says it recovered: once,
// with the revision that serves now, how many reloads failed and for how long the rules were
// stale. Good reloads after good ones, and the first load, say nothing of the kind.
func TestReloadRecoveredIsLogged(t *testing.T) {
	for _, tc := range []struct {
		name, fix, revision string
	}{
		{"a new good file", rulesB, revision(rulesB)},
		{"the old file back", rulesA, revision(rulesA)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log lockedBuffer
			clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
			r, path := newReloader(t, rulesA, Options{Now: clock.Now, Logger: slog.New(slog.NewJSONHandler(&log, nil))})
			writeFile(t, path, rulesB)
			if err := r.Reload("api"); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, rulesA)
			if err := r.Reload("api"); err != nil {
				t.Fatal(err)
			}
			if got := log.records(t, "rules reload recovered"); len(got) != 0 {
				t.Fatalf("good reloads after good ones logged %v; want no recovery", got)
			}

			writeFile(t, path, rulesBad)
			for range 2 {
				if r.Reload("SIGHUP") == nil {
					t.Fatal("Reload(bad) succeeded")
				}
			}
			writeFile(t, path, tc.fix)
			if err := r.Reload("api"); err != nil {
				t.Fatalf("Reload(fixed) = %v", err)
			}
			got := log.records(t, "rules reload recovered")
			if len(got) != 1 {
				t.Fatalf("recovery logged %d times: %v; want once", len(got), got)
			}
			rec := got[0]
			if rec["level"] != "INFO" || rec["reason"] != "api" || rec["path"] != path || rec["revision"] != tc.revision || rec["failed_reloads"] != 2.0 {
				t.Errorf("recovery line = %v; want INFO, reason api, path %s, revision %s, failed_reloads 2", rec, path, tc.revision)
			}
			// The fake clock moves a second at each reading, so the rules were stale for
			// whole seconds, at least one.
			if s, ok := rec["stale_seconds"].(float64); !ok || s < 1 || s != float64(int(s)) {
				t.Errorf("stale_seconds = %v; want a whole number of seconds, at least 1", rec["stale_seconds"])
			}

			// Another good reload is not a recovery.
			writeFile(t, path, rulesA)
			if err := r.Reload("api"); err != nil {
				t.Fatal(err)
			}
			if got := log.records(t, "rules reload recovered"); len(got) != 1 {
				t.Errorf("a good reload after the recovery logged another: %v", got)
			}
		})
	}
}
