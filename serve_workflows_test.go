package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

// learnWorkflow sends a callback whose REST action succeeds and waits until serve has
// learned the timeout of the Workflow it names (the fake's Workflow testkit.WorkflowSid).
func learnWorkflow(t *testing.T, s *served) {
	t.Helper()
	if code, body := s.post(t, "/assignment_callback", callback(1, `{"kind":"now"}`)); code != 200 || body != "{}" {
		t.Fatalf("callback = %d %s; want 200 {}", code, body)
	}
	eventually(t, "the workflow's timeout to be learned", func() bool {
		_, metrics := get(t, s.admin+"/metrics")
		return strings.Contains(metrics, "\nreservist_workflow_timeouts_known 1\n")
	})
}

// timestampOf is a callback's Timestamp: the reservation's deadline counts from it.
func timestampOf(t *testing.T, cb map[string][]string) time.Time {
	t.Helper()
	sec, err := strconv.ParseInt(cb["Timestamp"][0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(sec, 0)
}

// A REST action's deadline is its Workflow's TaskReservationTimeout, which serve learns
// from TaskRouter: with a Workflow of 2 s, an action TaskRouter keeps refusing with 503 is
// abandoned 2 s after its callback, not after the 120 s of --reservation-timeout.
func TestServeWorkflowTimeoutAbandonsEarlier(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	fake.SetWorkflow(taskroutertest.Workflow{Sid: testkit.WorkflowSid, WorkspaceSid: testkit.WorkspaceSid, TaskReservationTimeout: 2})
	s := startServe(t, testkit.Rules(t, "delayed"), credentials(fake), "--twilio-base-url", fake.URL, "--reservation-timeout", "120s")
	learnWorkflow(t, s)
	if recs := s.log.records("learned the workflow's reservation timeout: REST actions for it are abandoned after it"); len(recs) != 1 ||
		recs[0]["workflow_sid"] != testkit.WorkflowSid || recs[0]["timeout_seconds"] != 2.0 {
		t.Errorf("learned lines = %v; want one for %s with timeout_seconds 2", recs, testkit.WorkflowSid)
	}

	wr := taskroutertest.NewSid("WR", 2)
	fake.Inject(wr, taskroutertest.Times(1000, taskroutertest.Fault{Status: 503})...)
	cb := callback(2, `{"kind":"now"}`)
	if code, body := s.post(t, "/assignment_callback", cb); code != 200 || body != "{}" {
		t.Fatalf("callback = %d %s; want 200 {}", code, body)
	}
	var abandoned map[string]any
	eventually(t, "the action to be abandoned", func() bool {
		for _, r := range s.log.records("outbox action abandoned") {
			if r["reservation_sid"] == wr {
				abandoned = r
				return true
			}
		}
		return false
	})
	deadline, err := time.Parse(time.RFC3339Nano, abandoned["deadline"].(string))
	if want := timestampOf(t, cb).Add(2 * time.Second); err != nil || !deadline.Equal(want) {
		t.Errorf("abandoned action's deadline = %v (%v); want the callback's Timestamp + 2s = %v", abandoned["deadline"], err, want)
	}
	for _, r := range fake.RequestsFor(wr) {
		if r.Time.After(timestampOf(t, cb).Add(3 * time.Second)) {
			t.Errorf("REST call at %v, over a second past the workflow's deadline", r.Time)
		}
	}
}

// The inverse: with --reservation-timeout 1s and a Workflow of 300 s, an action that keeps
// failing is still retried past the second, because its deadline is the Workflow's. The
// retries' log lines name the fake, where the calls went, not taskrouter.twilio.com.
func TestServeWorkflowTimeoutRetriesLonger(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	fake.SetWorkflow(taskroutertest.Workflow{Sid: testkit.WorkflowSid, WorkspaceSid: testkit.WorkspaceSid, TaskReservationTimeout: 300})
	s := startServe(t, testkit.Rules(t, "delayed"), credentials(fake), "--twilio-base-url", fake.URL, "--reservation-timeout", "1s")
	learnWorkflow(t, s)

	wr := taskroutertest.NewSid("WR", 2)
	fake.Inject(wr, taskroutertest.Times(1000, taskroutertest.Fault{Drop: true})...)
	cb := callback(2, `{"kind":"now"}`)
	if code, body := s.post(t, "/assignment_callback", cb); code != 200 || body != "{}" {
		t.Fatalf("callback = %d %s; want 200 {}", code, body)
	}
	// The global deadline is at most a second after the Timestamp; a call two seconds after
	// it is one the global deadline would not have allowed.
	late := timestampOf(t, cb).Add(2 * time.Second)
	eventually(t, "a retry past --reservation-timeout", func() bool {
		for _, r := range fake.RequestsFor(wr) {
			if r.Time.After(late) && r.Status != 0 {
				return true
			}
		}
		return false
	})
	for _, r := range s.log.records("outbox action abandoned") {
		t.Errorf("action abandoned: %v; want it retried until the workflow's 300s", r)
	}
	retries := s.log.records("outbox action will be retried")
	if len(retries) == 0 {
		t.Fatal("no retry was logged")
	}
	want := strconv.Quote(fake.URL + "/v1/Workspaces/" + testkit.WorkspaceSid + "/Tasks/" + taskroutertest.NewSid("WT", 2) + "/Reservations/" + wr)
	if e, _ := retries[0]["error"].(string); !strings.Contains(e, want) || strings.Contains(e, "taskrouter.twilio.com") {
		t.Errorf("retry's error = %q; want it to name %s, not taskrouter.twilio.com", e, want)
	}
}
