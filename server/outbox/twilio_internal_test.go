package outbox

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 30 ", 30 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	o := &Outbox{backoffBase: 500 * time.Millisecond, backoffMax: 4 * time.Second}
	for n, ceiling := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
		for range 200 {
			if d := o.backoff(n); d <= 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %v, want in (0, %v]", n, d, ceiling)
			}
		}
	}
	if d := o.backoff(1000); d <= 0 || d > 4*time.Second {
		t.Errorf("backoff(1000) = %v", d)
	}
}

// Every parameter the SPEC sends for each instruction has a setter.
func TestSettersCoverSpec(t *testing.T) {
	for _, name := range []string{
		"ReservationStatus", "WorkerActivitySid", "Instruction",
		"DequeueTo", "DequeueFrom", "DequeuePostWorkActivitySid", "DequeueRecord", "DequeueTimeout",
		"DequeueStatusCallbackUrl", "DequeueStatusCallbackEvent",
		"CallTo", "CallFrom", "CallUrl", "CallAccept", "CallRecord", "CallTimeout", "CallStatusCallbackUrl",
		"RedirectCallSid", "RedirectUrl", "RedirectAccept",
		"To", "From", "PostWorkActivitySid", "Timeout", "StatusCallback", "StatusCallbackEvent", "Record", "Muted",
		"Beep", "StartConferenceOnEnter", "EndConferenceOnExit", "EndConferenceOnCustomerExit", "BeepOnCustomerEntrance",
		"WaitUrl", "EarlyMedia", "MaxParticipants", "ConferenceStatusCallback", "ConferenceStatusCallbackEvent",
		"ConferenceRecord", "RecordingStatusCallback",
	} {
		if setters[name] == nil {
			t.Errorf("no setter for %s", name)
		}
	}
}
