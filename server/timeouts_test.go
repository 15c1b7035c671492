package server

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/reservist/reservist/internal/testkit"
)

// workflowTimeouts is Timeouts that knows one Workflow and records what it is asked.
type workflowTimeouts struct {
	mu    sync.Mutex
	asked [][3]string // account, workspace, workflow
	at    []time.Time // now
}

func (w *workflowTimeouts) ReservationTimeout(now time.Time, account, workspace, workflow string) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked = append(w.asked, [3]string{account, workspace, workflow})
	w.at = append(w.at, now)
	if workflow == testkit.WorkflowSid {
		return 300 * time.Second
	}
	return 120 * time.Second
}

// A REST action's deadline is the timeout of the Workflow its callback names, counted from
// the callback; a decision answered at once asks nothing.
func TestCallbackDeadlineIsTheWorkflows(t *testing.T) {
	tm := &workflowTimeouts{}
	h := newHarness(t, func(o *Options) { o.Timeouts = tm })

	created := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	rest := callbackParams(`{"kind":"rest"}`)
	rest.Set("Timestamp", strconv.FormatInt(created.Unix(), 10))
	before := time.Now()
	wantJSON(t, h.post(t, "/assignment_callback", rest), 200, `{}`)
	after := time.Now()
	wantJSON(t, h.post(t, "/assignment_callback", callbackParams(`{"channel":"chat"}`)), 200, `{"instruction":"accept"}`)

	acts := h.outbox.Actions()
	if len(acts) != 1 {
		t.Fatalf("outbox got %d actions; want 1", len(acts))
	}
	if a := acts[0]; !a.Received.Equal(created) || !a.Deadline.Equal(created.Add(300*time.Second)) {
		t.Errorf("action received %v, deadline %v; want the Timestamp %v and the workflow's 300s after it", a.Received, a.Deadline, created)
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	want := [3]string{testkit.AccountSid, testkit.WorkspaceSid, testkit.WorkflowSid}
	if len(tm.asked) != 1 || tm.asked[0] != want {
		t.Fatalf("Timeouts asked %v; want once, for %v", tm.asked, want)
	}
	if at := tm.at[0]; at.Before(before) || at.After(after) {
		t.Errorf("Timeouts asked at %v; want the callback's arrival, within %v..%v", at, before, after)
	}
}
