package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Two rule sets that answer the same chat callback differently.
const (
	rulesAccept = "version: 1\nrules:\n  - name: chat\n    when: task.attributes.channel == \"chat\"\n    do: accept\n"
	rulesReject = "version: 1\nrules:\n  - name: chat\n    when: task.attributes.channel == \"chat\"\n    do: reject\n    with:\n      activity_sid: WAfedcba9876543210fedcba9876543210\n"

	answerAccept = `{"instruction":"accept"}`
	answerReject = `{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}`
)

// replace writes a new rules file beside the old and renames it over, as editors do.
func replace(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".rules.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A file changed on disk is picked up by the watcher; a bad one never serves, and readiness,
// metrics and /rules say so until a good one replaces it.
func TestServeReloadsOnFileChange(t *testing.T) {
	s := startServe(t, rulesAccept, nil)
	chat := callback(1, `{"channel":"chat"}`)
	answer := func() string { _, body := s.post(t, "/assignment_callback", chat); return body }
	if got := answer(); got != answerAccept {
		t.Fatalf("first answer = %s; want %s", got, answerAccept)
	}

	replace(t, s.rules, rulesReject)
	eventually(t, "the watcher to swap in the new rules", func() bool { return answer() == answerReject })

	replace(t, s.rules, "version: 1\nrules:\n  - name: chat\n    when: task.attributes.channel ==\n    do: accept\n")
	eventually(t, "/readyz to say stale", func() bool {
		_, body := get(t, s.url+"/readyz")
		return strings.Contains(body, `"rules":"stale"`)
	})
	if got := answer(); got != answerReject {
		t.Errorf("answer with a bad file on disk = %s; want the last good rules' %s", got, answerReject)
	}
	if _, metrics := get(t, s.admin+"/metrics"); !strings.Contains(metrics, "reservist_rules_last_reload_successful 0") {
		t.Errorf("/metrics after a bad file lacks reservist_rules_last_reload_successful 0")
	}
	if _, body := get(t, s.admin+"/rules"); !strings.Contains(body, s.rules+":4:") {
		t.Errorf("/rules after a bad file = %s; want the error with its FILE:LINE:COL", body)
	}

	replace(t, s.rules, rulesAccept)
	eventually(t, "a good file to clear the stale state", func() bool {
		_, body := get(t, s.url+"/readyz")
		return strings.Contains(body, `"rules":"ok"`)
	})
	if got := answer(); got != answerAccept {
		t.Errorf("answer after the fix = %s; want %s", got, answerAccept)
	}
	if _, metrics := get(t, s.admin+"/metrics"); !strings.Contains(metrics, "reservist_rules_last_reload_successful 1") {
		t.Errorf("/metrics after the fix lacks reservist_rules_last_reload_successful 1")
	}
}

// Swapping the file 50 times under load from 8 clients fails no request, and every answer
// is one of the two rule sets' answers.
func TestServeReloadUnderLoad(t *testing.T) {
	s := startServe(t, rulesAccept, nil)
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		requests atomic.Int64
		mu       sync.Mutex
		bad      []string
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	for g := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				cb := callback(uint64(g*1_000_000+i+1), `{"channel":"chat"}`)
				req, _ := http.NewRequest("POST", s.url+"/assignment_callback", strings.NewReader(cb.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := client.Do(req)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				requests.Add(1)
				if err != nil || resp.StatusCode != 200 || (string(body) != answerAccept && string(body) != answerReject) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("client %d: %v %v %s", g, err, resp, body))
					mu.Unlock()
				}
			}
		})
	}
	// Each swap waits until the new rules serve, so 50 swaps really happen under load.
	for i := range 50 {
		content, want := rulesReject, answerReject
		if i%2 == 1 {
			content, want = rulesAccept, answerAccept
		}
		replace(t, s.rules, content)
		eventually(t, fmt.Sprintf("swap %d to serve", i+1), func() bool {
			_, body := s.post(t, "/assignment_callback", callback(999_999_999, `{"channel":"chat"}`))
			return body == want
		})
	}
	stop.Store(true)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d requests failed or got an answer of neither rule set; first: %s", len(bad), requests.Load(), bad[0])
	}
	t.Logf("%d requests across 50 swaps, none failed", requests.Load())
	if n := len(s.log.records("rules reloaded")); n < 50 {
		t.Errorf("%d reloads logged; want at least 50", n)
	}
}
