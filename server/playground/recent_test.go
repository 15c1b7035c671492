package playground

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/engine"
)

func TestRecent(t *testing.T) {
	r := NewRecent()
	for i := range RecentMax + 7 {
		r.Observe(url.Values{"ReservationSid": {fmt.Sprintf("WR%032d", i)}, "TaskAttributes": {"{}"}}, nil)
	}
	got := r.List()
	if len(got) != RecentMax {
		t.Fatalf("%d kept; want %d", len(got), RecentMax)
	}
	if got[0].ReservationSid != fmt.Sprintf("WR%032d", RecentMax+6) || got[RecentMax-1].ReservationSid != fmt.Sprintf("WR%032d", 7) {
		t.Errorf("kept %s … %s; want the newest first, the oldest dropped", got[0].ReservationSid, got[RecentMax-1].ReservationSid)
	}
	if got[0].Form != "ReservationSid=WR00000000000000000000000000000056&TaskAttributes=%7B%7D" {
		t.Errorf("form = %s", got[0].Form)
	}

	// Big callbacks are bounded by bytes as well as by count.
	big := strings.Repeat("x", 1<<20)
	for range 6 {
		r.Observe(url.Values{"TaskAttributes": {big}}, nil)
	}
	total := 0
	for _, c := range r.List() {
		total += len(c.Form)
	}
	if total > recentBytes*2 { // the form encoding of x is x: the bound is on the raw bytes
		t.Errorf("recent callbacks hold %d bytes; want at most about %d", total, recentBytes)
	}
	if n := len(r.List()); n != 3 {
		t.Errorf("%d kept after six 1 MiB callbacks; want 3 within %d bytes", n, recentBytes)
	}

}

func BenchmarkRecentObserve(b *testing.B) {
	r := NewRecent()
	p := url.Values{"ReservationSid": {"WR0123456789abcdef0123456789abcdef"}, "TaskAttributes": {`{"channel":"chat"}`}, "WorkerAttributes": {`{}`}}
	for b.Loop() {
		r.Observe(p, nil)
	}
}

// A recent callback replays at the time it was decided: one without a usable Timestamp is
// listed with that time as its Timestamp, one with a Timestamp as it came.
func TestRecentKeepsTheTime(t *testing.T) {
	r := NewRecent()
	decided := &engine.Decision{At: time.Date(2026, 3, 9, 13, 15, 0, 0, time.UTC)}
	r.Observe(url.Values{"ReservationSid": {"WR1"}}, decided)
	r.Observe(url.Values{"ReservationSid": {"WR2"}, "Timestamp": {"2026-03-10T08:00:00-05:00"}}, decided)
	r.Observe(url.Values{"ReservationSid": {"WR3"}, "Timestamp": {"soon"}}, decided)
	for _, c := range r.List() {
		want := map[string]string{"WR1": "1773062100", "WR2": "2026-03-10T08:00:00-05:00", "WR3": "1773062100"}[c.ReservationSid]
		q, err := url.ParseQuery(c.Form)
		if err != nil || q.Get("Timestamp") != want {
			t.Errorf("recent %s lists Timestamp %q (%v); want %q", c.ReservationSid, q.Get("Timestamp"), err, want)
		}
	}
}
