package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// wrkResult is what wrk reports of a throughput run.
type wrkResult struct {
	rps       float64
	requests  int
	p50, p99  time.Duration // latency at saturation
	errors    int           // non-2xx answers and socket errors
	cpuPerReq time.Duration // the server's CPU time (user + system) per request
	wrkCPU    time.Duration // wrk's own CPU time
	other     float64       // cores busy with anything but this run
}

// wrkScript is the Lua script that makes wrk send the signed callback. The body is
// URL-encoded and the signature base64, so neither needs escaping in a long string.
func wrkScript(r request) string {
	return fmt.Sprintf(`wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["X-Twilio-Signature"] = [==[%s]==]
`, r.body, r.signature)
}

// runWrk measures throughput at o.conns connections for o.duration.
func runWrk(ctx context.Context, wrk, dir string, o options, r request) (*wrkResult, error) {
	script := filepath.Join(dir, "wrk.lua")
	if err := os.WriteFile(script, []byte(wrkScript(r)), 0o644); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrk, "-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.conns),
		"-d", fmt.Sprintf("%ds", int(o.duration.Seconds())), "--timeout", "5s", "--latency", "-s", script, r.url)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("wrk: %v\n%s", err, out.String())
	}
	res, err := parseWrk(out.String())
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, out.String())
	}
	res.wrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res, nil
}

// parseWrk reads wrk's report.
func parseWrk(out string) (*wrkResult, error) {
	res := &wrkResult{}
	found := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return nil, fmt.Errorf("wrk's Requests/sec %q: %v", f[1], err)
			}
			res.rps, found = v, true
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			res.requests, _ = strconv.Atoi(f[0])
		case len(f) == 2 && f[0] == "50%":
			res.p50 = wrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			res.p99 = wrkDuration(f[1])
		case len(f) == 5 && f[0] == "Non-2xx":
			n, _ := strconv.Atoi(f[4])
			res.errors += n
		case len(f) > 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 3; i < len(f); i += 2 {
				n, _ := strconv.Atoi(strings.TrimSuffix(f[i], ","))
				res.errors += n
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("no Requests/sec in wrk's output")
	}
	return res, nil
}

// wrkDuration reads wrk's 1.23ms, 456.00us, 2.00s.
func wrkDuration(s string) time.Duration {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0
			}
			return time.Duration(f * float64(u.unit))
		}
	}
	return 0
}

// rateResult is what the latency run measured.
type rateResult struct {
	sent     int
	failed   int // errors, non-200 or a different answer
	achieved float64
	p50, p99 time.Duration
	max      time.Duration
	other    float64 // cores busy with anything but this run
}

// constantRate sends the callback at a steady rate, open loop: the i-th request is due at
// start + i/rate whether or not earlier ones were answered, and its latency is counted from
// when it was due, so a stalled server shows in the figures instead of slowing the sender.
//
// It is written here rather than taken from hey (github.com/rakyll/hey): hey's -q limits
// each of its -c workers with its own ticker, so at 2,000/s over 50 workers all 50 tickers
// fire together every 25 ms — bursts of 50 requests, not a steady stream — and a worker
// waits for its answer before it sends again (closed loop), which hides stalls.
//
// The first warm part is sent but not counted: connections are opened then.
func constantRate(ctx context.Context, r request, rate int, warm, measured time.Duration, workers int) (*rateResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	period := time.Second / time.Duration(rate)
	skip := int(warm / period)
	total := skip + int(measured/period)
	lat := make([]time.Duration, total)
	bad := make([]bool, total)
	jobs := make(chan int, total)
	start := time.Now().Add(10 * time.Millisecond)
	due := func(i int) time.Time { return start.Add(time.Duration(i) * period) }

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				ok := send(ctx, client, r)
				lat[i], bad[i] = time.Since(due(i)), !ok
			}
		})
	}
	for i := range total {
		if d := time.Until(due(i)); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	end := time.Now()

	res := &rateResult{sent: total - skip}
	res.achieved = float64(total-skip) / end.Sub(due(skip)).Seconds()
	for i := skip; i < total; i++ {
		if bad[i] {
			res.failed++
		}
	}
	counted := slices.Clone(lat[skip:])
	slices.Sort(counted)
	res.p50, res.p99, res.max = percentile(counted, 50), percentile(counted, 99), counted[len(counted)-1]
	return res, nil
}

// send sends the callback once and reports whether it was answered as expected.
func send(ctx context.Context, client *http.Client, r request) bool {
	resp, err := client.Do(r.newHTTP(ctx))
	if err != nil {
		return false
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK && bytes.Equal(body, r.exact)
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // ceil(n·p/100), 1-based
	return sorted[max(i, 1)-1]
}

// cpuTime is the CPU time (user + system) a process has used, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// utime and stime, fields 14 and 15, in clock ticks; Linux's USER_HZ is 100.
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// cpuSample is where the machine's CPU time stood at one moment.
type cpuSample struct {
	at      time.Time
	machine time.Duration // every core's busy time, steal included (/proc/stat)
	server  time.Duration // the peer's
	self    time.Duration // the runner's
}

func takeCPU(server int) (cpuSample, error) {
	c := cpuSample{at: time.Now()}
	var err error
	if c.machine, err = machineBusy(); err != nil {
		return c, err
	}
	if c.server, err = cpuTime(server); err != nil {
		return c, err
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return c, err
	}
	c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return c, nil
}

// other is how many cores, on average since before, were busy with something else than the
// peer, the load generator (wrk, whose CPU time is given, or this runner) and this runner:
// other engineers' builds and tests on a shared machine, or the hypervisor's steal.
func (c cpuSample) other(before cpuSample, wrk time.Duration) float64 {
	busy := (c.machine - before.machine) - (c.server - before.server) - (c.self - before.self) - wrk
	return max(0, busy.Seconds()/c.at.Sub(before.at).Seconds())
}

// machineBusy is the time all cores have spent on anything but idling, from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var ticks int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
