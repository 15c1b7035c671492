package outbox_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/internal/testkit"
)

// An action is refused by the shape of its SIDs before any store sees it.
func TestValidate(t *testing.T) {
	ok := func() outbox.Action {
		return outbox.Action{ReservationSid: testkit.Sid("WR", 1), TaskSid: testkit.Sid("WT", 1), WorkspaceSid: testkit.WorkspaceSid,
			WorkerSid: testkit.WorkerSid, WorkflowSid: testkit.WorkflowSid,
			Params: outbox.Params{"ReservationStatus": "accepted"}, Deadline: time.Now()}
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	upper := ok()
	upper.ReservationSid = "WR" + strings.ToUpper(upper.ReservationSid[2:]) + ""
	if err := upper.Validate(); err != nil {
		t.Errorf("Validate(upper-case hex) = %v; want nil", err)
	}
	for name, edit := range map[string]func(*outbox.Action){
		"no reservation":        func(a *outbox.Action) { a.ReservationSid = "" },
		"oversized reservation": func(a *outbox.Action) { a.ReservationSid = "WR" + strings.Repeat("a", 40000) },
		"reservation of a task": func(a *outbox.Action) { a.ReservationSid = testkit.Sid("WT", 1) },
		"reservation not hex":   func(a *outbox.Action) { a.ReservationSid = "WR" + strings.Repeat("g", 32) },
		"path in reservation":   func(a *outbox.Action) { a.ReservationSid = "WR../../../Workers/" + strings.Repeat("0", 15) },
		"short task":            func(a *outbox.Action) { a.TaskSid = "WT123" },
		"no workspace":          func(a *outbox.Action) { a.WorkspaceSid = "" },
		"bad worker":            func(a *outbox.Action) { a.WorkerSid = "WK" + strings.Repeat("0", 33) },
		"bad workflow":          func(a *outbox.Action) { a.WorkflowSid = "WF" + strings.Repeat("0", 32) },
		"no params":             func(a *outbox.Action) { a.Params = nil },
		"no deadline":           func(a *outbox.Action) { a.Deadline = time.Time{} },
	} {
		a := ok()
		edit(&a)
		if err := a.Validate(); !errors.Is(err, outbox.ErrInvalidAction) {
			t.Errorf("Validate(%s) = %v; want ErrInvalidAction", name, err)
		}
		if err := a.Validate(); err != nil && len(err.Error()) > 200 {
			t.Errorf("Validate(%s) error is %d bytes: it must not quote the value", name, len(err.Error()))
		}
	}
}

// Parameters from templates show in logs only when they are SIDs.
func TestLogParams(t *testing.T) {
	a := outbox.Action{
		Params: outbox.Params{"Instruction": "call", "CallTo": "+15551230000", "CallFrom": "+15005550006",
			"CallUrl": "https://example.com/twiml", "CallStatusCallbackUrl": "https://example.com/s?who=alice",
			"DequeuePostWorkActivitySid": testkit.Sid("WA", 9), "CallTimeout": 20},
		Private: []string{"CallTo", "CallStatusCallbackUrl", "DequeuePostWorkActivitySid", "CallTimeout"},
	}
	got := a.LogParams()
	want := map[string][]string{
		"Instruction": {"call"}, "CallTo": {outbox.Redacted}, "CallFrom": {"+15005550006"},
		"CallUrl": {"https://example.com/twiml"}, "CallStatusCallbackUrl": {outbox.Redacted},
		"DequeuePostWorkActivitySid": {testkit.Sid("WA", 9)}, "CallTimeout": {outbox.Redacted},
	}
	if d := cmp.Diff(want, map[string][]string(got)); d != "" {
		t.Errorf("LogParams (-want +got):\n%s", d)
	}
	if a.Params["CallTo"] != "+15551230000" {
		t.Error("LogParams changed the action's own parameters")
	}
}

// The dry-run line and a refusal's message never show a private value.
func TestCarrierLogsNoPrivateValues(t *testing.T) {
	const secret = "client:alice-private"
	logs := &testkit.LogBuffer{}
	clock := &manualClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	a := outbox.Action{ReservationSid: testkit.Sid("WR", 1), TaskSid: testkit.Sid("WT", 1), WorkspaceSid: testkit.WorkspaceSid,
		Params:  outbox.Params{"Instruction": "call", "CallTo": secret, "CallFrom": "+15005550006", "CallUrl": "https://example.com/x"},
		Private: []string{"CallTo"}, Received: clock.now, Deadline: clock.now.Add(time.Minute)}
	dry := outbox.NewCarrier(outbox.CarrierOptions{Clock: clock, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	dry.Try(context.Background(), a, 0, func(outbox.Step) {})
	refused := outbox.NewCarrier(outbox.CarrierOptions{Clock: clock, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Sender: senderFunc(func(context.Context, outbox.Action) error {
			return &outbox.HTTPError{StatusCode: 400, Code: 21211, Message: "The 'To' number " + secret + " is not valid"}
		})})
	refused.Try(context.Background(), a, 0, func(outbox.Step) {})
	if strings.Contains(logs.String(), secret) {
		t.Errorf("a private value reached the log:\n%s", logs)
	}
	if len(logs.Records("dry-run")) != 1 || len(logs.Records("outbox action failed")) != 1 {
		t.Errorf("want one dry-run and one failure line:\n%s", logs)
	}
	if !strings.Contains(logs.String(), `"CallFrom":["+15005550006"]`) {
		t.Errorf("a literal parameter is missing from the dry-run line:\n%s", logs)
	}
}
