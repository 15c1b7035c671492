package postgres_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/pgtest"
	"github.com/reservist/reservist/internal/testkit"
)

// TestFigures measures the embedded and the shared outbox side by side, one after the other
// in one run, on loopback: `via: rest` callbacks per second and the latency of their `{}`
// answer, at saturation (64 connections) and at a steady rate; how late delayed actions
// are sent after their due time; and each process's peak RSS. It is a measurement, not a
// test: it runs only with RESERVIST_FIGURES=1, and RESERVIST_FIGURES_BEFORE may name a
// reservist binary built without the shared outbox, measured with bbolt as "before".
//
//	RESERVIST_FIGURES=1 go test -run TestFigures -v -timeout 20m ./engine/outbox/postgres
//
// PostgreSQL runs with fsync on, as a database would; bbolt syncs every commit.
func TestFigures(t *testing.T) {
	if os.Getenv("RESERVIST_FIGURES") != "1" {
		t.Skip("a measurement: set RESERVIST_FIGURES=1")
	}
	const (
		conns    = 64
		duration = 5 * time.Second
		rate     = 500
		delayed  = 200
		rounds   = 5
	)
	bin := testkit.Binary(t)
	type target struct {
		name, bin, outbox string
	}
	srv := pgtest.Start(t, pgtest.Fsync(true))
	targets := []target{
		{"bbolt", bin, "bbolt"},
		{"postgres", bin, srv.NewDatabase(t)},
	}
	if before := os.Getenv("RESERVIST_FIGURES_BEFORE"); before != "" {
		targets = append([]target{{"bbolt (before)", before, ""}}, targets...)
	}
	for _, tg := range []string{bin, os.Getenv("RESERVIST_FIGURES_BEFORE")} {
		if tg == "" {
			continue
		}
		if st, err := os.Stat(tg); err == nil {
			t.Logf("binary %s: %.1f MiB (this test's build, not stripped)", tg, float64(st.Size())/(1<<20))
		}
	}

	type result struct {
		rps, p50, p99               []float64 // saturation, per round
		carried                     []float64 // actions carried out per second, burst and drain
		rateP50, rateP99            []float64 // steady rate, per round
		lateP50, lateP99, lateWorst float64
		idleKB, rssKB               int64
	}
	results := map[string]*result{}
	procs := map[string]*testkit.Process{}
	fakes := map[string]*taskroutertest.Server{}
	for _, tg := range targets {
		fake := taskroutertest.NewServer(taskroutertest.Config{})
		t.Cleanup(fake.Close)
		dir := t.TempDir()
		rules := filepath.Join(dir, "rules.yaml")
		if err := os.WriteFile(rules, []byte(figuresRules), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"--rules", rules, "--state-dir", filepath.Join(dir, "state"), "--reload-poll", "0",
			"--twilio-base-url", fake.URL, "--log-format", "json"}
		if tg.outbox != "" {
			args = append(args, "--outbox", tg.outbox)
		}
		p := testkit.StartProcess(t, tg.bin, []string{"TWILIO_ACCOUNT_SID=" + fake.AccountSid, "TWILIO_AUTH_TOKEN=" + fake.AuthToken}, args...)
		procs[tg.name], fakes[tg.name], results[tg.name] = p, fake, &result{}
	}
	var seq atomic.Uint64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}, Timeout: 10 * time.Second}
	post := func(p *testkit.Process, token, attrs string) (time.Duration, error) {
		params := testkit.Callback(seq.Add(1), attrs)
		body := params.Encode()
		u := p.URL + "/assignment_callback"
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", testkit.Sign(token, u, params))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != 200 || string(b) != "{}" {
			return 0, fmt.Errorf("answer %d %s", resp.StatusCode, b)
		}
		return took, nil
	}

	// Rounds take turns between the targets, so that the machine's drift falls on all alike.
	for round := range rounds {
		for _, tg := range targets {
			p, fake, r := procs[tg.name], fakes[tg.name], results[tg.name]
			var mu sync.Mutex
			var lat []time.Duration
			var failed atomic.Int64
			var firstErr atomic.Pointer[error]
			stop := time.Now().Add(duration)
			var wg sync.WaitGroup
			for range conns {
				wg.Go(func() {
					var mine []time.Duration
					for time.Now().Before(stop) {
						d, err := post(p, fake.AuthToken, `{"kind":"now"}`)
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, &err)
							continue
						}
						mine = append(mine, d)
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			if n := failed.Load(); n > 0 {
				t.Errorf("%s: %d callbacks failed, the first: %v", tg.name, n, *firstErr.Load())
			}
			r.rps = append(r.rps, float64(len(lat))/duration.Seconds())
			r.p50 = append(r.p50, ms(pct(lat, 0.50)))
			r.p99 = append(r.p99, ms(pct(lat, 0.99)))
			t.Logf("round %d %s: %d conns: %.0f callbacks/s, {} p50 %.2f ms p99 %.2f ms", round+1, tg.name, conns,
				r.rps[round], r.p50[round], r.p99[round])
			// Let the outbox carry the burst out before the next run.
			left := drained(t, p, 10*time.Minute)
			r.carried = append(r.carried, float64(len(lat))/(duration+left).Seconds())
			t.Logf("round %d %s: the burst's %d actions carried out %v after it ended (%.0f/s over the run)", round+1, tg.name, len(lat),
				left.Round(time.Millisecond), r.carried[round])

			lat = steady(t, rate, duration, func() (time.Duration, error) { return post(p, fake.AuthToken, `{"kind":"now"}`) })
			r.rateP50 = append(r.rateP50, ms(pct(lat, 0.50)))
			r.rateP99 = append(r.rateP99, ms(pct(lat, 0.99)))
			t.Logf("round %d %s: %d callbacks/s: {} p50 %.2f ms p99 %.2f ms", round+1, tg.name, rate, r.rateP50[round], r.rateP99[round])
			drained(t, p, 10*time.Minute)
		}
	}

	// Delayed actions: 200 callbacks with a 2 s delay, 50 a second; each REST call's time
	// against its due time, the callback's Timestamp plus the delay.
	for _, tg := range targets {
		p, fake, r := procs[tg.name], fakes[tg.name], results[tg.name]
		before := len(fake.Requests())
		sent := map[string]time.Time{}
		tick := time.NewTicker(20 * time.Millisecond)
		for range delayed {
			<-tick.C
			n := seq.Add(1)
			params := testkit.Callback(n, `{"kind":"later"}`)
			// Due its delay after the callback's Timestamp (its arrival when the
			// Timestamp is later: not here).
			ts, err := strconv.ParseInt(params.Get("Timestamp"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			code, body := testkit.Post(t, p.URL+"/assignment_callback", fake.AuthToken, params)
			if code != 200 || body != "{}" {
				t.Fatalf("%s: delayed callback = %d %s", tg.name, code, body)
			}
			sent[params.Get("ReservationSid")] = time.Unix(ts, 0)
		}
		tick.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		reqs, err := fake.WaitRequests(ctx, before+delayed)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var late []time.Duration
		for _, rq := range reqs[before:] {
			if at, ok := sent[rq.ReservationSid]; ok {
				late = append(late, rq.Time.Sub(at.Add(figuresDelay)))
			}
		}
		r.lateP50, r.lateP99, r.lateWorst = ms(pct(late, 0.5)), ms(pct(late, 0.99)), ms(pct(late, 1))
		t.Logf("%s: %d delayed actions sent after their due time: p50 %.0f ms p99 %.0f ms max %.0f ms",
			tg.name, len(late), r.lateP50, r.lateP99, r.lateWorst)
	}
	// Memory, in fresh processes given the same work: idle after start, then the peak over
	// 5,000 callbacks at the steady rate and their REST calls.
	for _, tg := range targets {
		fake := taskroutertest.NewServer(taskroutertest.Config{})
		t.Cleanup(fake.Close)
		dir := t.TempDir()
		rules := filepath.Join(dir, "rules.yaml")
		if err := os.WriteFile(rules, []byte(figuresRules), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"--rules", rules, "--state-dir", filepath.Join(dir, "state"), "--reload-poll", "0", "--twilio-base-url", fake.URL}
		if tg.outbox != "" {
			db := tg.outbox
			if db != "bbolt" {
				db = srv.NewDatabase(t)
			}
			args = append(args, "--outbox", db)
		}
		p := testkit.StartProcess(t, tg.bin, []string{"TWILIO_ACCOUNT_SID=" + fake.AccountSid, "TWILIO_AUTH_TOKEN=" + fake.AuthToken}, args...)
		r := results[tg.name]
		r.idleKB = rss(t, p.Cmd.Process.Pid, "VmRSS:")
		steady(t, rate, 10*time.Second, func() (time.Duration, error) { return post(p, fake.AuthToken, `{"kind":"now"}`) })
		drained(t, p, 5*time.Minute)
		r.rssKB = rss(t, p.Cmd.Process.Pid, "VmHWM:")
		t.Logf("%s: RSS %.1f MiB idle, peak %.1f MiB over %d callbacks at %d/s", tg.name, float64(r.idleKB)/1024, float64(r.rssKB)/1024, 10*rate, rate)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n| outbox | callbacks/s (%d conns) | `{}` p50 / p99 at saturation | actions carried out/s | `{}` p50 / p99 at %d/s | sent after due p50 / p99 / max | RSS idle / peak |\n|---|---|---|---|---|---|---|\n", conns, rate)
	for _, tg := range targets {
		r := results[tg.name]
		fmt.Fprintf(&b, "| %s | %s | %s / %s ms | %s | %s / %s ms | %.0f / %.0f / %.0f ms | %.1f / %.1f MiB |\n", tg.name,
			spread(r.rps, "%.0f"), spread(r.p50, "%.1f"), spread(r.p99, "%.0f"), spread(r.carried, "%.0f"),
			spread(r.rateP50, "%.1f"), spread(r.rateP99, "%.0f"),
			r.lateP50, r.lateP99, r.lateWorst, float64(r.idleKB)/1024, float64(r.rssKB)/1024)
	}
	t.Logf("medians of %d rounds (min–max):%s", rounds, b.String())
}

const figuresDelay = 2 * time.Second

var figuresRules = `version: 1
rules:
  - name: later
    when: task.attributes.kind == "later"
    do: accept
    delay: 2s
  - name: now
    when: task.attributes.kind == "now"
    do: accept
    via: rest
`

// steady sends at rate per second for d (open loop: a late answer does not delay the next
// callback) and returns the latencies.
func steady(t *testing.T, rate int, d time.Duration, send func() (time.Duration, error)) []time.Duration {
	t.Helper()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			took, err := send()
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			mu.Lock()
			lat = append(lat, took)
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d callbacks failed at the steady rate, the first: %v", n, *firstErr.Load())
	}
	return lat
}

// drained waits until the process's outbox holds nothing pending (its
// reservist_outbox_depth, the whole shared outbox's for PostgreSQL) and says how long that
// took.
func drained(t *testing.T, p *testkit.Process, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		resp, err := http.Get(p.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "reservist_outbox_depth "); ok && strings.TrimSpace(v) == "0" {
				return time.Since(start)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the outbox of %s still held actions after %v", p.URL, within)
	return 0
}

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// spread is the median of xs with its range: "12 (10–15)".
func spread(xs []float64, format string) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	return fmt.Sprintf(format+" ("+format+"–"+format+")", s[len(s)/2], s[0], s[len(s)-1])
}

// rss reads a field of a process's status (VmRSS:, VmHWM:), in KiB.
func rss(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, field); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
