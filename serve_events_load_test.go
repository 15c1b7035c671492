package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/pgtest"
	"github.com/reservist/reservist/internal/testkit"
)

// loadEnv turns on TestServeEventsLoad: it takes some 20 s of both cores, so it is not a
// part of go test ./... (and it measures rather than asserts timing). "postgres" runs it
// on the shared outbox, in a throwaway PostgreSQL.
const loadEnv = "RESERVIST_EVENTS_LOAD"

// TestServeEventsLoad sends serve 2,000 Event callbacks a second for 10 seconds, open loop
// (a sender does not wait for the previous answer), after 20,000 callbacks that it decided
// (1,000 of them a delayed accept by REST, whose rescinded event comes first). Every event
// must be answered 204, every outcome counted under its rule, no rescinded action sent, and
// the heap must grow by less than the stated bound of the outcomes memory. It logs the
// rate reached, the latencies and the heap.
//
//	RESERVIST_EVENTS_LOAD=1 go test -run TestServeEventsLoad -v .
//	RESERVIST_EVENTS_LOAD=postgres go test -run TestServeEventsLoad -v .
func TestServeEventsLoad(t *testing.T) {
	if os.Getenv(loadEnv) == "" {
		t.Skip("set " + loadEnv + "=1 to run the Event callback load")
	}
	const (
		rate      = 2000
		seconds   = 10
		callbacks = 20_000
		delayed   = 1_000 // the last ones: a 4s accept by REST, rescinded by their event, sent first
		senders   = 64
	)
	rules := testkit.Rules(t, "delayed")
	var extra []string
	shared := os.Getenv(loadEnv) == "postgres"
	if shared {
		extra = []string{"--outbox", pgtest.Start(t).NewDatabase(t)}
	}
	s, fake := eventsServe(t, rules, extra...)
	s.log.discard.Store(os.Getenv("KEEPLOG") == "") // a decision line per callback is not what is measured
	u := s.url + "/taskrouter/events"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}

	// The events: for each reservation its outcome (rescinded for the delayed ones, then
	// timeout and accepted in turn), and between them events reservist ignores and task
	// events, as a workspace sends them. Built and signed first, so that the
	// rescinded events follow their delayed decisions closely.
	type ev struct {
		body, sig string
	}
	total := rate * seconds
	evs := make([]ev, 0, total)
	want := map[string]int{}
	for i := 0; len(evs) < total; i++ {
		// The delayed reservations' events first, while their actions wait.
		n := uint64((i/2+callbacks-delayed)%callbacks + 1)
		var e taskroutertest.Event
		switch {
		case i%2 == 1:
			e = taskroutertest.Event{Type: "worker.activity.update", WorkerSid: testkit.WorkerSid, WorkerAttributes: `{"contact_uri":"client:alice"}`}
		case n > callbacks-delayed:
			e = taskroutertest.Event{Type: "reservation.rescinded", TaskSid: testkit.Sid("WT", n), ReservationSid: testkit.Sid("WR", n), WorkerSid: testkit.WorkerSid}
			want["later/"+outcomes.Rescinded]++
		case n%2 == 0:
			e = taskroutertest.Event{Type: "reservation.timeout", TaskSid: testkit.Sid("WT", n), ReservationSid: testkit.Sid("WR", n), WorkerSid: testkit.WorkerSid}
			want["default/"+outcomes.Timeout]++
		default:
			e = taskroutertest.Event{Type: "reservation.accepted", TaskSid: testkit.Sid("WT", n), ReservationSid: testkit.Sid("WR", n), WorkerSid: testkit.WorkerSid}
			want["default/"+outcomes.Accepted]++
		}
		form := e.Form(fake.AccountSid)
		evs = append(evs, ev{body: form.Encode(), sig: testkit.Sign(s.token, u, form)})
	}

	start := heap() // the events built above are live to the end: counted from here

	// The decisions, as fast as serve takes them.
	var wg sync.WaitGroup
	work := make(chan int)
	var badCallbacks atomic.Int64
	for range senders {
		wg.Go(func() {
			for n := range work {
				kind := `{"kind":"other"}` // the default: defer, answered {}
				if n > callbacks-delayed {
					kind = `{"kind":"later"}`
				}
				cb := callback(uint64(n), kind)
				req, _ := http.NewRequest("POST", s.url+"/assignment_callback", strings.NewReader(cb.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Twilio-Signature", testkit.Sign(s.token, s.url+"/assignment_callback", cb))
				resp, err := client.Do(req)
				if err != nil {
					badCallbacks.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					badCallbacks.Add(1)
				}
			}
		})
	}
	decidedFrom := time.Now()
	for n := 1; n <= callbacks; n++ {
		work <- n
	}
	close(work)
	wg.Wait()
	if n := badCallbacks.Load(); n > 0 {
		t.Fatalf("%d callbacks were not answered 200", n)
	}
	decided := heap()
	t.Logf("%d callbacks decided in %s", callbacks, time.Since(decidedFrom).Round(time.Millisecond))

	// Open loop: every millisecond the events due by then are queued for the senders; a
	// queue that is full means serve (or this machine) is behind, and is counted.
	queue := make(chan ev, rate)
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, total)
		statuses  = map[int]int{}
		behind    int
	)
	for range senders {
		wg.Go(func() {
			for e := range queue {
				req, _ := http.NewRequest("POST", u, strings.NewReader(e.body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Twilio-Signature", e.sig)
				began := time.Now()
				resp, err := client.Do(req)
				status := -1
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				took := time.Since(began)
				mu.Lock()
				latencies = append(latencies, took)
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	began := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent := 0
	for sent < total {
		now := <-tick.C
		due := min(total, int(now.Sub(began).Seconds()*rate)+1)
		for ; sent < due; sent++ {
			select {
			case queue <- evs[sent]:
			default:
				queue <- evs[sent]
				behind++
			}
		}
	}
	tick.Stop()
	close(queue)
	wg.Wait()
	elapsed := time.Since(began)
	after := heap()
	runtime.KeepAlive(evs) // live in every measurement, so that they cancel out

	slices.Sort(latencies)
	pct := func(p int) time.Duration { return latencies[min(len(latencies)-1, len(latencies)*p/100)] }
	t.Logf("%d events in %s: %.0f/s; answers %v; latency p50 %s p99 %s max %s; queue full %d times",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), statuses,
		pct(50).Round(time.Microsecond), pct(99).Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond), behind)
	mb := func(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	t.Logf("heap: %s before the callbacks, %s after %d callbacks (+%s), %s after the events (+%s over the run)",
		mb(start), mb(decided), callbacks, mb(decided-min(decided, start)), mb(after), mb(after-min(after, start)))

	if statuses[http.StatusNoContent] != total {
		t.Errorf("answers %v; want all %d 204", statuses, total)
	}
	if got := float64(total) / elapsed.Seconds(); got < 0.95*rate {
		t.Errorf("%.0f events/s reached; want %d", got, rate)
	}
	counted := time.Now()
	for k, n := range want {
		rule, outcome, _ := strings.Cut(k, "/")
		deadline := time.Now().Add(30 * time.Second)
		for metricValue(t, s, "reservist_reservation_outcomes_total", map[string]string{"rule": rule, "outcome": outcome}) != float64(n) {
			if time.Now().After(deadline) {
				_, body := get(t, s.admin+"/metrics")
				t.Errorf("after 30s, not %d %s outcomes of %s:\n%s\n%s", n, outcome, rule, grepLines(body, "reservation_"), grepLines(s.log.String(), "outcomes:"))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("every outcome counted %s after the last answer", time.Since(counted).Round(10*time.Millisecond))
	if got := metricValue(t, s, "reservist_rest_calls_total", map[string]string{"result": "superseded"}); got != delayed {
		t.Errorf("superseded actions: %v; want %d", got, delayed)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d REST calls; want none: every delayed action was rescinded", n)
	}
	// The bound: DefaultMax decisions at the measured bytes each (outcomes'
	// TestBytesPerEntry: some 70), 14 MB; the run remembers a tenth of that.
	const bound = outcomes.DefaultMax * 70
	if growth := after - min(after, start); growth > bound && !shared {
		t.Errorf("the heap grew by %s over the run; want under %s", mb(growth), mb(bound))
	}
}
