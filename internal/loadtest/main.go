// Command loadtest measures reservist's callback path against a bare net/http handler and
// Twilio's tutorial Flask handler on this machine, and prints the figures with the ratios
// that README's Performance section sets as targets. It is a manual command, not a test:
//
//	go run ./internal/loadtest                 # about ten minutes (it says how long at the start)
//	go run ./internal/loadtest -runs 3         # about half an hour: README's tables with the runs' spread
//	go run ./internal/loadtest -smoke          # under a minute: checks that the runner works
//
// It builds reservist (go build -o into a temporary directory) and starts, one after the
// other on loopback, the peers that are each sent the same signed callback: the example's
// voice callback (testdata/example/cases/voice.form) with a number, a float and an object
// added to its task attributes for the generated rules to compare (extraAttributes):
//
//   - reservist with TWILIO_AUTH_TOKEN set and the example rules, where the callback is
//     decided by the voice rule, after the three voice rules above it;
//   - the same with GOGC=100 in its environment, which turns off its GC headroom;
//   - reservist with 1,000 generated rules of each shape (shapes.go: strings, numbers, in
//     lists, ?./?? paths, a mix, and with -shapes all ranges, skills lists and ||), the last of
//     which matches;
//   - bare: this program again, in a mode where it parses the form and answers {};
//   - flask: the tutorial's Flask app, run with Debian's python3-flask as the tutorial runs it.
//
// It takes each start's time to the first 200 from /readyz, then runs rounds in which the
// peers take turns: throughput at 64 connections (wrk, for a bounded duration) with the
// server's CPU time per callback, then latency at a steady 2,000 callbacks/s (an open-loop
// generator in this program; see constantRate for why not hey). It reports each peer's
// medians and its peak RSS (VmHWM). Everything stays on 127.0.0.1, every load is bounded in
// time and count, and the children are killed when it exits, also on Ctrl-C (and, through
// Pdeathsig, when it is killed).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/reservist/reservist/server"
)

// options are the runner's flags.
type options struct {
	duration  time.Duration // wrk's run per peer and round
	rounds    int           // rounds of runs; each peer's median is reported
	conns     int           // wrk's connections
	threads   int           // wrk's threads
	rate      int           // callbacks per second for the latency run
	rateFor   time.Duration // the latency run's measured part, after a second of warm-up
	warm      time.Duration // the latency run's warm-up, not counted
	rules     int           // size of the generated rules files
	shapes    string        // which shapes of generated rules to run, comma-separated
	starts    int           // starts per peer timed to its first readiness 200; the median is reported
	runs      int           // whole runs, each starting the peers afresh
	peers     string        // which peers to run, comma-separated
	keep      bool          // keep the temporary directory (logs, rules, app.py)
	bareAddr  string        // internal: run as the bare handler on this address
	pythonBin string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "wrk's `duration` per peer and round")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds of throughput and latency runs, peers taking turns; medians are reported")
	flag.IntVar(&o.conns, "conns", 64, "concurrent connections for the throughput run")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads (the load generator shares the machine with the server)")
	flag.IntVar(&o.rate, "rate", 2000, "callbacks per second for the latency run")
	flag.DurationVar(&o.rateFor, "rate-duration", 5*time.Second, "how long the latency run is measured, after 1s of warm-up")
	flag.IntVar(&o.rules, "rules", 1000, "rules in each generated file; the last one matches")
	flag.StringVar(&o.shapes, "shapes", defaultShapes, "shapes of generated rules to run, comma-separated, or all (strings, numbers, in, optional, ranges, skills, or, mix)")
	flag.IntVar(&o.starts, "starts", 5, "times each peer is started to time its start; the median is reported")
	flag.IntVar(&o.runs, "runs", 1, "whole runs, each starting the peers afresh; README's tables give the median of the runs and their spread")
	flag.StringVar(&o.peers, "peers", "bare,reservist,reservist-gogc100,flask", "peers to run besides the generated rules, comma-separated")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory with the logs, rules and app.py")
	flag.StringVar(&o.pythonBin, "python", "/usr/bin/python3", "Debian's python3, which has python3-flask")
	smoke := flag.Bool("smoke", false, "a run of under a minute with light load: checks the runner, measures nothing")
	flag.StringVar(&o.bareAddr, "bare", "", "internal: serve the bare handler on this `address`")
	flag.Parse()

	if o.bareAddr != "" {
		if err := serveBare(o.bareAddr); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest bare:", err)
			os.Exit(1)
		}
		return
	}
	o.warm = time.Second
	if *smoke {
		o.duration, o.rounds, o.rate, o.rateFor, o.warm, o.rules, o.starts, o.runs = time.Second, 1, 200, time.Second, 200*time.Millisecond, 50, 1, 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// authToken signs the callbacks; it is no real account's.
const (
	authToken  = "10ad7e570123456789abcdef01234567"
	accountSid = "AC0123456789abcdef0123456789abcdef"
)

// callbackParams reads the example's voice callback and adds extraAttributes: the one
// request every peer is sent.
func callbackParams(path string) (url.Values, error) {
	form, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	params, err := url.ParseQuery(strings.TrimSpace(string(form)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if params, err = withExtraAttributes(params); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return params, nil
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	params, err := callbackParams(filepath.Join(root, "testdata/example/cases/voice.form"))
	if err != nil {
		return err
	}
	want, err := goldenResponse(filepath.Join(root, "testdata/example/cases/voice.golden.json"))
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "reservist-loadtest-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stdout, "keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	kids := &children{}
	defer kids.killAll()

	selected := map[string]bool{}
	for _, p := range strings.Split(o.peers, ",") {
		selected[strings.TrimSpace(p)] = true
	}
	shaped, err := selectShapes(o.shapes)
	if err != nil {
		return err
	}

	var skipped []string
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		wrk = ""
		skipped = append(skipped, "throughput: wrk is not installed; apt-get install wrk")
	}
	if selected["flask"] {
		if err := exec.CommandContext(ctx, o.pythonBin, "-c", "import flask").Run(); err != nil {
			delete(selected, "flask")
			skipped = append(skipped, fmt.Sprintf("flask: %s cannot import flask; apt-get install python3-flask", o.pythonBin))
		}
	}

	// The rules files are written before the build, so that they are at rest when the peers
	// start: reservist waits for a file written within its settle time to settle.
	for _, s := range shaped {
		if err := os.WriteFile(filepath.Join(dir, "rules-"+s.name+".yaml"), []byte(generatedRules(s, o.rules)), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, "building reservist ...")
	bin := filepath.Join(dir, "reservist")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	m := machineInfo(o)
	fmt.Fprintln(stdout, m.String())
	for _, s := range skipped {
		fmt.Fprintln(stdout, "skipped:", s)
	}

	env := []string{"TWILIO_ACCOUNT_SID=" + accountSid, "TWILIO_AUTH_TOKEN=" + authToken}
	reservistArgs := func(rulesFile, name string) []string {
		return []string{"serve", "--rules", rulesFile,
			"--state-dir", filepath.Join(dir, "state-"+name),
			// Nothing in these runs goes by REST; if it did, it would stay on this machine.
			"--twilio-base-url", "http://127.0.0.1:9"}
	}
	peers := []*peer{
		{name: "bare", label: "bare net/http (parse form, write {})", cmd: []string{self}, bare: true, ready: "/readyz", want: []byte("{}")},
		{name: "reservist", label: "reservist, example rules (signed)", cmd: append([]string{bin}, reservistArgs(filepath.Join(root, "testdata/example/rules.yaml"), "example")...), env: env, ready: "/readyz", want: want},
		// The same with the GC headroom off: what reservist does with the runtime's defaults.
		{name: "reservist-gogc100", label: "reservist, example rules, GOGC=100 (no GC headroom)", cmd: append([]string{bin}, reservistArgs(filepath.Join(root, "testdata/example/rules.yaml"), "gogc100")...), env: append(slices.Clip(env), "GOGC=100"), ready: "/readyz", want: want},
		{name: "flask", label: "Twilio tutorial Flask (python3-flask)", cmd: []string{o.pythonBin, filepath.Join(dir, "app.py")}, ready: "/assignment_callback", flask: true},
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(flaskApp), 0o644); err != nil {
		return err
	}
	for _, s := range shaped {
		file := filepath.Join(dir, "rules-"+s.name+".yaml")
		selected[shapePeer(s)] = true
		peers = append(peers, &peer{name: shapePeer(s), shape: s.name,
			label: fmt.Sprintf("reservist, %s rules: %s, last matches", thousands(o.rules), s.name),
			cmd:   append([]string{bin}, reservistArgs(file, s.name)...), env: env, ready: "/readyz", want: want})
	}

	var running []*peer
	for _, p := range peers {
		if selected[p.name] {
			running = append(running, p)
		}
	}
	fmt.Fprintf(stdout, "%d peers, %d run(s): about %s\n", len(running), max(1, o.runs), roughly(expectedDuration(o, running)))
	var runs []map[string]*measurement
	for r := range max(1, o.runs) {
		if o.runs > 1 {
			fmt.Fprintf(stdout, "run %d/%d\n", r+1, o.runs)
		}
		res, err := measure(ctx, o, kids, running, dir, wrk, params, stdout)
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		if err != nil {
			return err
		}
		m.loadAfter = loadAverage()
		printTable(stdout, o, m, running, res)
		runs = append(runs, res)
	}
	printReadme(stdout, o, m, running, runs)
	return nil
}

// shapePeer names the peer with a shape's generated rules.
func shapePeer(s shape) string { return "rules-" + s.name }

// expectedDuration is about how long the runs take: each peer's starts, wrk's rounds, and
// the steady-rate rounds of the peers that keep up with the rate (Flask does not).
// The overheads are what a run on the 2-core machine took beyond the loads.
func expectedDuration(o options, peers []*peer) time.Duration {
	var d time.Duration
	for _, p := range peers {
		d += time.Duration(max(1, o.starts)) * 200 * time.Millisecond
		d += time.Duration(o.rounds) * (o.duration + time.Second)
		if !p.flask {
			d += time.Duration(o.rounds) * (o.warm + o.rateFor + 500*time.Millisecond)
		}
	}
	return 30*time.Second + time.Duration(max(1, o.runs))*d // the build, then the runs
}

// roughly rounds d to minutes, or to seconds under a minute.
func roughly(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}

// thousands writes n with a comma before each group of three digits.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// measure starts the peers one after the other, timing each start, then runs the rounds:
// in each, every peer in turn takes wrk's load; then rounds of the steady rate. Taking turns
// spreads whatever else the machine is doing over all peers alike. The peers not under load
// sit idle. Peak RSS is read at the end.
func measure(ctx context.Context, o options, kids *children, peers []*peer, dir, wrk string, params url.Values, stdout io.Writer) (map[string]*measurement, error) {
	res := map[string]*measurement{}
	for _, p := range peers {
		fmt.Fprintf(stdout, "starting %s ...\n", p.name)
		mm, err := startPeer(ctx, kids, p, dir, params, o.starts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		defer kids.stop(mm.proc)
		res[p.name] = mm
	}
	// The throughput runs of a round follow each other closely, and so do the latency runs:
	// the machine's speed drifts (other virtual machines on the host), and the ratios are
	// taken round by round between runs close in time.
	for round := 1; round <= o.rounds && wrk != ""; round++ {
		for _, p := range peers {
			mm := res[p.name]
			fmt.Fprintf(stdout, "round %d/%d: %s, %d connections for %v ...\n", round, o.rounds, p.name, o.conns, o.duration)
			before, err := takeCPU(mm.proc.Pid)
			if err != nil {
				return nil, err
			}
			w, err := runWrk(ctx, wrk, dir, o, mm.req)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			after, err := takeCPU(mm.proc.Pid)
			if err != nil {
				return nil, err
			}
			w.cpuPerReq = (after.server - before.server) / time.Duration(max(1, w.requests))
			w.other = after.other(before, w.wrkCPU)
			mm.wrk = append(mm.wrk, w)
			// A peer that cannot keep up with the rate would only queue: its latency is
			// not a figure, and the run would take minutes.
			mm.overloaded = mm.overloaded || w.rps < 1.2*float64(o.rate)
		}
	}
	for round := 1; round <= o.rounds; round++ {
		for _, p := range peers {
			mm := res[p.name]
			if mm.overloaded {
				continue
			}
			fmt.Fprintf(stdout, "round %d/%d: %s, %d callbacks/s for %v ...\n", round, o.rounds, p.name, o.rate, o.rateFor)
			before, err := takeCPU(mm.proc.Pid)
			if err != nil {
				return nil, err
			}
			r, err := constantRate(ctx, mm.req, o.rate, o.warm, o.rateFor, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			after, err := takeCPU(mm.proc.Pid)
			if err != nil {
				return nil, err
			}
			r.other = after.other(before, 0)
			mm.rate = append(mm.rate, r)
		}
	}
	for _, p := range peers {
		mm := res[p.name]
		var err error
		if mm.rssKB, err = peakRSS(mm.proc.Pid); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// startPeer starts one peer, times its start and checks its answer to the callback. It is
// started and stopped starts-1 times before, and its start time is the median of all: a
// single start on a shared machine varies by tens of milliseconds.
func startPeer(ctx context.Context, kids *children, p *peer, dir string, params url.Values, starts int) (*measurement, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{}, p.cmd...)
	switch {
	case p.bare:
		args = append(args, "-bare", addr)
	case p.flask:
		args = append(args, fmt.Sprint(port))
	default:
		// The admin listener is on, as by default: with it, the playground keeps the
		// recent callbacks.
		admin, err := freePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "--listen", addr, "--admin-listen", fmt.Sprintf("127.0.0.1:%d", admin))
	}
	logFile, err := os.Create(filepath.Join(dir, p.name+".log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor

	base := "http://" + addr
	target := base + "/assignment_callback"
	sig := server.NewValidator(authToken).Sign(target, params)
	mm := &measurement{req: request{url: target, body: params.Encode(), signature: sig, want: p.want}}
	var took []time.Duration
	for i := range max(1, starts) {
		var t time.Duration
		if mm.proc, t, err = kids.start(ctx, args, p.env, logFile, base+p.ready); err != nil {
			return nil, err
		}
		took = append(took, t)
		if i < starts-1 {
			kids.stop(mm.proc)
		}
	}
	slices.Sort(took)
	mm.ready = took[(len(took)-1)/2]
	if err := mm.req.check(ctx); err != nil {
		kids.stop(mm.proc)
		return nil, fmt.Errorf("the callback was not answered as expected (see %s): %w", logFile.Name(), err)
	}
	return mm, nil
}

// measurement is one peer's figures.
type measurement struct {
	proc       *os.Process
	req        request
	ready      time.Duration // process start to first 200 on its readiness path, median of the starts
	wrk        []*wrkResult  // one per round
	rate       []*rateResult // one per round
	overloaded bool          // too slow for the steady rate
	rssKB      int64
}

// moduleRoot is the directory of reservist's go.mod: the runner is run from inside the
// repository.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run it from inside the reservist repository: go run ./internal/loadtest")
	}
	return filepath.Dir(mod), nil
}

// machine is what the figures were measured on.
type machine struct {
	cpu                   string
	cores                 int
	goVersion             string
	loadBefore, loadAfter string
	wrk, flask            string
}

func machineInfo(o options) *machine {
	m := &machine{cores: runtime.NumCPU(), goVersion: runtime.Version(), loadBefore: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("wrk", "-v").CombinedOutput(); len(out) > 0 || err == nil {
		m.wrk, _, _ = strings.Cut(strings.TrimSpace(string(out)), " [")
	}
	if out, err := exec.Command(o.pythonBin, "-c", "import importlib.metadata as m; print(m.version('flask'))").Output(); err == nil {
		m.flask = "Flask " + strings.TrimSpace(string(out))
	}
	return m
}

func (m *machine) String() string {
	return fmt.Sprintf("machine: %d cores, %s; %s; %s; %s; load average %s", m.cores, m.cpu, m.goVersion, m.wrk, m.flask, m.loadBefore)
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
