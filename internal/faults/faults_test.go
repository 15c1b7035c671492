package faults

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outbox/boltdb"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

// rejectAction is a rule's action that answers rejectAnswer.
const (
	rejectAction = "    do: reject\n    with:\n      activity_sid: WA0123456789abcdef0123456789abcdef\n"
	rejectAnswer = `{"instruction":"reject","activity_sid":"WA0123456789abcdef0123456789abcdef"}`
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// SIGKILL during bursts of callbacks: every action acknowledged ({} answered) before the
// kill is carried out after a restart.
func TestKillDuringBursts(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	rules, state := rulesFile(t, restRules), t.TempDir()
	var mu sync.Mutex
	var acked []string
	next := atomic.Uint64{}
	const kills = 4
	for round := range kills {
		s := start(t, rules, state, fake.URL)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					n := next.Add(1)
					code, body, err := s.callback(n, `{"kind":"rest"}`)
					if err != nil {
						return // killed under us
					}
					if code == 200 && body == "{}" {
						mu.Lock()
						acked = append(acked, testkit.Sid("WR", n))
						mu.Unlock()
					}
				}
			})
		}
		// Kill mid-burst, after a round-dependent number of acknowledgements.
		want := 100 + 80*round
		testkit.Eventually(t, "a burst under way", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= want*(round+1)/2 })
		s.Signal(t, syscall.SIGKILL)
		close(stop)
		wg.Wait()
		s.Wait(t, 10*time.Second)
	}
	// One last start carries out whatever is left.
	s := start(t, rules, state, fake.URL)
	mu.Lock()
	defer mu.Unlock()
	delivered := func(sid string) bool {
		for _, r := range fake.RequestsFor(sid) {
			if r.Status == http.StatusOK {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(20 * time.Second)
	lost := 0
	for _, sid := range acked {
		for !delivered(sid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if !delivered(sid) {
			lost++
		}
	}
	total, twice := len(fake.Requests()), 0
	for _, sid := range acked {
		if len(fake.RequestsFor(sid)) > 1 {
			twice++
		}
	}
	t.Logf("%d kills: %d actions acknowledged, %d lost, %d REST requests (%d reservations called more than once)", kills, len(acked), lost, total, twice)
	if lost > 0 {
		t.Errorf("%d of %d acknowledged actions were never carried out", lost, len(acked))
	}
	_ = s
}

// goodStore writes a store holding n pending actions, as reservist would, and returns its
// file's content.
func goodStore(t *testing.T, dir string, n int) []byte {
	t.Helper()
	c := outbox.NewCarrier(outbox.CarrierOptions{})
	ob, err := boltdb.Open(dir, boltdb.Options{Carrier: c})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range n {
		a := outbox.Action{ReservationSid: testkit.Sid("WR", uint64(i+1)), TaskSid: testkit.Sid("WT", uint64(i+1)),
			WorkspaceSid: testkit.WorkspaceSid, Rule: "later",
			Params:   outbox.Params{"Instruction": "call", "CallFrom": "+15005550006", "CallTo": "+15551230000", "CallUrl": "https://example.com/twiml", "CallAccept": true},
			Received: now, Due: now.Add(time.Hour), Deadline: now.Add(2 * time.Hour)}
		if _, err := ob.Put(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, boltdb.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runOnce runs serve over a state dir until it exits or is ready; it returns the exit code
// (-1 when it became ready and was stopped) and what it wrote to stderr.
func runOnce(t *testing.T, rules, state string) (int, string) {
	t.Helper()
	addr := testkit.FreePort(t)
	cmd := exec.Command(bin(t), "serve", "--rules", rules, "--state-dir", state, "--listen", addr, "--admin-listen", "off", "--reload-poll", "0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case <-done:
			return cmd.ProcessState.ExitCode(), stderr.String()
		case <-deadline:
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("serve neither exited nor became ready:\n%s", stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if code, _, err := get("http://" + addr + "/readyz"); err == nil && code == 200 {
			_ = cmd.Process.Kill()
			<-done
			return -1, stderr.String()
		}
	}
}

// A damaged store file is refused at start with exit 3 and a message naming it and what to
// do, never a panic or a fault; damage bbolt never reads starts as usual.
func TestDamagedStoreFiles(t *testing.T) {
	rules := rulesFile(t, restRules)
	good := goodStore(t, t.TempDir(), 400)
	const page = 4096
	r := rand.New(rand.NewPCG(13, 13))
	overwrite := func(from, to int, fill func(i int) byte) []byte {
		b := bytes.Clone(good)
		for i := from; i < to && i < len(b); i++ {
			b[i] = fill(i)
		}
		return b
	}
	randomByte := func(int) byte { return byte(r.Uint32()) }
	type kind struct {
		name     string
		data     []byte
		mustFail bool
	}
	kinds := []kind{
		{"truncated to 8 KiB", good[:8192], true},
		{"truncated to 16 KiB", good[:16384], true},
		{"truncated to half", good[:len(good)/2], true},
		{"data pages zeroed", overwrite(2*page, len(good), func(int) byte { return 0 }), true},
		{"data pages random", overwrite(2*page, len(good), randomByte), true},
		{"meta pages zeroed", overwrite(0, 2*page, func(int) byte { return 0 }), true},
	}
	for range 6 { // single pages at random, zeroed or random: refused or fine, never a crash
		p := 2 + r.IntN(len(good)/page-2)
		kinds = append(kinds, kind{fmt.Sprintf("page %d random", p), overwrite(p*page, (p+1)*page, randomByte), false})
	}
	for _, k := range kinds {
		state := t.TempDir()
		path := filepath.Join(state, boltdb.FileName)
		if err := os.WriteFile(path, k.data, 0o600); err != nil {
			t.Fatal(err)
		}
		code, stderr := runOnce(t, rules, state)
		crashed := strings.Contains(stderr, "panic") || strings.Contains(stderr, "fatal error") ||
			strings.Contains(stderr, "SIGSEGV") || strings.Contains(stderr, "SIGBUS") || strings.Contains(stderr, "goroutine ")
		switch {
		case crashed:
			t.Errorf("%s: serve crashed (exit %d):\n%.600s", k.name, code, stderr)
		case code == -1 && !k.mustFail:
			// Damage in a page bbolt never reads: it starts.
		case code != 3:
			t.Errorf("%s: exit %d; want 3:\n%.600s", k.name, code, stderr)
		case !strings.Contains(stderr, path+" is damaged") || !strings.Contains(stderr, "Move it aside (mv "+path):
			t.Errorf("%s: stderr %q; want it to name %s and say to move it aside", k.name, stderr, path)
		}
	}
}

// The state directory removed while reservist runs: the store writes its file out anew
// from the open copy, so that after a restart every acknowledged action is still pending.
// While it cannot (a file stands where the directory was), /readyz is 503, decisions that go
// by REST are answered synchronously (503 with a delay), and it says so in the log.
func TestStateDirRemoved(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	rules, state := rulesFile(t, restRules), filepath.Join(t.TempDir(), "state")
	s := start(t, rules, state, fake.URL)
	acked := 0
	postLater := func(from, to uint64) {
		for n := from; n < to; n++ {
			if code, body, err := s.callback(n, `{"kind":"later"}`); err == nil && code == 200 && body == "{}" {
				acked++
			}
		}
	}
	postLater(1, 21)
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	postLater(21, 41)
	testkit.Eventually(t, "the store file written out anew", func() bool {
		_, err := os.Stat(filepath.Join(state, boltdb.FileName))
		return err == nil
	})

	// Now a file where the directory was: nothing can be kept.
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "/readyz 503 while the store cannot be written", func() bool { return s.ready() == 503 })
	if code, body, err := s.callback(100, `{"kind":"rest"}`); err != nil || code != 200 || body != `{"instruction":"accept"}` {
		t.Errorf("REST decision with the store gone = %d %s %v; want it answered synchronously", code, body, err)
	}
	if code, _, err := s.callback(101, `{"kind":"later"}`); err != nil || code != 503 {
		t.Errorf("delayed decision with the store gone = %d %v; want 503", code, err)
	}
	if !strings.Contains(s.Log.String(), "outbox store failing") {
		t.Errorf("the failing store is not logged:\n%.2000s", s.Log)
	}
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "/readyz 200 once the directory can be made again", func() bool { return s.ready() == 200 })
	postLater(41, 51)

	s.Signal(t, syscall.SIGKILL)
	s.Wait(t, 10*time.Second)
	s = start(t, rules, state, fake.URL)
	if got := s.metric(t, "reservist_outbox_depth"); int(got) != acked {
		t.Errorf("pending after a restart = %v; want all %d acknowledged", got, acked)
	}
}

// The rules path replaced by a FIFO: a reload fails at once instead of waiting on it, the
// old rules keep serving, a good file put back is loaded, and SIGTERM still stops reservist.
func TestRulesPathFIFO(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	rules := rulesFile(t, restRules)
	s := start(t, rules, t.TempDir(), fake.URL)
	if err := os.Remove(rules); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(rules, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	reload := func() (int, string, error) {
		req, _ := http.NewRequest("POST", s.Admin+"/-/reload", nil)
		c := &http.Client{Timeout: 3 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String(), nil
	}
	if code, body, err := reload(); err != nil || code != 400 || !strings.Contains(body, "named pipe") {
		t.Errorf("POST /-/reload with a FIFO at the path = %d %s %v; want 400 at once, naming the FIFO", code, body, err)
	}
	if code := s.ready(); code != 200 {
		t.Errorf("/readyz = %d; want 200 (stale rules still serve)", code)
	}
	if code, body, err := s.callback(1, `{}`); err != nil || body != `{"instruction":"accept"}` {
		t.Errorf("callback with a FIFO at the path = %d %s %v; want the old rules' answer", code, body, err)
	}
	// A good file put back in place of the FIFO is loaded.
	tmp := rules + ".new"
	changed := strings.Replace(restRules, "  - name: now\n    when: true\n    do: accept\n", "  - name: now\n    when: true\n"+rejectAction, 1)
	if err := os.WriteFile(tmp, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, rules); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the good file to be loaded", func() bool {
		_, body, err := s.callback(2, `{}`)
		return err == nil && body == rejectAnswer
	})
	// And once more a FIFO, then SIGTERM: shutdown does not wait on it.
	if err := os.Remove(rules); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(rules, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Signal(t, syscall.SIGHUP)
	time.Sleep(100 * time.Millisecond) // let the SIGHUP reload begin
	t0 := time.Now()
	s.Signal(t, syscall.SIGTERM)
	defer func() { t.Logf("SIGTERM to exit: %v", time.Since(t0)) }()
	if code := s.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM; want 0", code)
	}
}

// The rules path replaced by a huge file or by a device: refused with a message, never
// read, so that memory stays where it was.
func TestRulesPathHugeOrDevice(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	rules := rulesFile(t, restRules)
	s := start(t, rules, t.TempDir(), fake.URL)
	const limit = 256 << 20
	peak := watchRSS(t, s.Process, limit)
	reload := func() (int, string) {
		req, _ := http.NewRequest("POST", s.Admin+"/-/reload", nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	// 400 MB (sparse: it costs the disk nothing).
	huge := rules + ".huge"
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(400 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(huge, rules); err != nil {
		t.Fatal(err)
	}
	if code, body := reload(); code != 400 || !strings.Contains(body, "over the 8 MiB a rules file may be") {
		t.Errorf("POST /-/reload of a 400 MB file = %d %s; want 400 naming the limit", code, body)
	}
	// A symlink to /dev/zero, which never ends.
	if err := os.Remove(rules); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", rules); err != nil {
		t.Fatal(err)
	}
	if code, body := reload(); code != 400 || !strings.Contains(body, "is a device") {
		t.Errorf("POST /-/reload of /dev/zero = %d %s; want 400 naming the device", code, body)
	}
	if p := peak(); p > limit/2 {
		t.Errorf("memory peaked at %d MB; want it bounded (%d MB)", p>>20, limit>>21)
	}
	select {
	case <-s.Done:
		t.Fatalf("reservist died (memory past %d MB?):\n%.2000s", limit>>20, s.Log)
	default:
	}
	if code, body, err := s.callback(1, `{}`); err != nil || body != `{"instruction":"accept"}` {
		t.Errorf("callback after the refused reloads = %d %s %v; want the old rules' answer", code, body, err)
	}
}

// A rules file rewritten in place in chunks, slower than the watcher's debounce, is never
// served half-written: every answer comes from the old rules or the whole new file.
func TestRulesSlowInPlaceWriter(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	rules := rulesFile(t, "version: 1\nrules:\n  - name: old\n    when: true\n    do: accept\n")
	s := start(t, rules, t.TempDir(), fake.URL)
	// The new file: filler rules that match nothing, then the one that decides. Each chunk
	// ends at a rule's end, so that every prefix is a valid file: the worst case.
	chunks := []string{"version: 1\n", "rules:\n"}
	for i := range 6 {
		chunks = append(chunks, fmt.Sprintf("  - name: filler-%d\n    when: task.attributes.n == %d\n    do: accept\n", i, i))
	}
	chunks = append(chunks, "  - name: new\n    when: true\n"+rejectAction)
	answers := map[string]int{}
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := uint64(1); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, body, err := s.callback(n, `{}`); err == nil {
				mu.Lock()
				answers[body]++
				mu.Unlock()
			}
		}
	})
	f, err := os.OpenFile(rules, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		if _, err := f.WriteString(c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // more than the watcher's 100 ms debounce
	}
	f.Close()
	testkit.Eventually(t, "the whole new file to serve", func() bool {
		_, body, err := s.callback(1<<40, `{}`)
		return err == nil && body == rejectAnswer
	})
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("answers while the file was written: %v", answers)
	for body, n := range answers {
		if body != `{"instruction":"accept"}` && body != rejectAnswer {
			t.Errorf("%d callbacks answered %s: a half-written file served", n, body)
		}
	}
}

// Against a TaskRouter that fails with thousands of actions pending, the process stays
// small and calls TaskRouter at a trickle: goroutines under 300, resident memory under
// 150 MB, and under 25 REST calls a second (a 429's pause and the circuit breaker hold back
// every action, not each its own).
func TestFailingTaskRouter(t *testing.T) {
	const pending = 5000
	tr := newFailingTaskRouter(t, "500")
	s := start(t, rulesFile(t, restRules), t.TempDir(), tr.URL, "--reservation-timeout", "10m")
	var wg sync.WaitGroup
	var acked atomic.Int64
	next := atomic.Uint64{}
	for range 16 {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > pending {
					return
				}
				if code, body, err := s.callback(n, `{"kind":"rest"}`); err == nil && code == 200 && body == "{}" {
					acked.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if acked.Load() != pending {
		t.Fatalf("%d of %d callbacks acknowledged", acked.Load(), pending)
	}
	for _, mode := range []string{"500", "429", "hang"} {
		tr.mode.Store(mode)
		before := tr.calls.Load()
		const window = 4 * time.Second
		time.Sleep(window)
		rate := float64(tr.calls.Load()-before) / window.Seconds()
		goroutines := s.metric(t, "go_goroutines")
		rss := rssBytes(s.Cmd.Process.Pid)
		depth := s.metric(t, "reservist_outbox_depth")
		t.Logf("TaskRouter answering %s, %v pending: %.1f REST calls/s, %v goroutines, RSS %d MB", mode, depth, rate, goroutines, rss>>20)
		if rate > 25 {
			t.Errorf("%s: %.1f REST calls/s; want a trickle (≤ 25/s)", mode, rate)
		}
		if goroutines > 300 {
			t.Errorf("%s: %v goroutines; want under 300", mode, goroutines)
		}
		if rss > 150<<20 {
			t.Errorf("%s: RSS %d MB; want under 150 MB", mode, rss>>20)
		}
	}
	if n := strings.Count(s.Log.String(), "outbox action will be retried"); n > 30 {
		t.Errorf("%d retry lines in 12 s; want them sampled (about one a second)", n)
	}
}

// Floods of idle keep-alive connections and of silent ones exhaust neither file
// descriptors nor either listener: callbacks and the admin listener still answer, and the
// process holds no more than its connection limits.
func TestIdleConnectionFlood(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	s := start(t, rulesFile(t, restRules), t.TempDir(), fake.URL)
	dialIdle := func(addr string, n int, request bool) []net.Conn {
		var conns []net.Conn
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial %s: %v", addr, err)
			}
			if request {
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
				buf := make([]byte, 512)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				c.Read(buf) // the answer; the connection then stays idle
			}
			conns = append(conns, c)
		}
		return conns
	}
	cb, admin := strings.TrimPrefix(s.URL, "http://"), strings.TrimPrefix(s.Admin, "http://")
	var all []net.Conn
	all = append(all, dialIdle(cb, 1500, true)...)
	all = append(all, dialIdle(cb, 300, false)...)
	all = append(all, dialIdle(admin, 200, true)...)
	defer func() {
		for _, c := range all {
			c.Close()
		}
	}()
	start := time.Now()
	if code, body, err := s.callback(1, `{}`); err != nil || code != 200 || body != `{"instruction":"accept"}` {
		t.Errorf("callback during the flood = %d %s %v", code, body, err)
	}
	if code, _, err := get(s.Admin + "/metrics"); err != nil || code != 200 {
		t.Errorf("admin /metrics during the flood = %d %v", code, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("answers during the flood took %v", took)
	}
	fds := openFiles(s.Cmd.Process.Pid)
	t.Logf("%d connections opened; reservist holds %d file descriptors", len(all), fds)
	if fds > 1024+64+100 {
		t.Errorf("reservist holds %d file descriptors; want its connection limits (1024 + 64) and a few more", fds)
	}
}

// Oversized ReservationSids among normal callbacks: refused by shape, answered
// synchronously, and not one of the normal callbacks around them fails.
func TestOversizedSidsAmongNormalCallbacks(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	s := start(t, rulesFile(t, restRules), t.TempDir(), fake.URL)
	huge := "WR" + strings.Repeat("f", 40<<10)
	var wg sync.WaitGroup
	var refused, oversizedSync atomic.Int64
	for w := range 10 {
		wg.Go(func() {
			for i := range 30 {
				n := uint64(w*30 + i + 1)
				p := testkit.Callback(n, `{"kind":"rest"}`)
				bad := i%10 == 0
				if bad {
					p.Set("ReservationSid", huge)
				}
				code, body, err := post(s.URL+"/assignment_callback", s.token, p)
				switch {
				case err != nil || code != 200:
					t.Errorf("callback %d = %d %v", n, code, err)
				case bad && body == `{"instruction":"accept"}`:
					oversizedSync.Add(1)
				case !bad && body != "{}":
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() > 0 {
		t.Errorf("%d of 270 normal callbacks were refused by the outbox beside oversized SIDs", refused.Load())
	}
	if oversizedSync.Load() != 30 {
		t.Errorf("%d of 30 oversized SIDs answered synchronously; want all", oversizedSync.Load())
	}
	if strings.Contains(s.Log.String(), strings.Repeat("f", 1000)) {
		t.Error("an oversized SID reached the log whole")
	}
}

// TestFigures measures what the README and the review quote: with 5,000 actions pending
// against a TaskRouter that answers 500, 429 or hangs from the start, the REST calls per
// second, goroutines and resident memory over ten seconds. It only logs; set
// RESERVIST_FAULTS_FIGURES=1 to run it.
func TestFigures(t *testing.T) {
	if os.Getenv("RESERVIST_FAULTS_FIGURES") == "" {
		t.Skip("set RESERVIST_FAULTS_FIGURES=1 to measure")
	}
	const pending = 5000
	for _, mode := range []string{"500", "429", "hang"} {
		t.Run(mode, func(t *testing.T) {
			tr := newFailingTaskRouter(t, mode)
			s := start(t, rulesFile(t, restRules), t.TempDir(), tr.URL, "--reservation-timeout", "10m")
			idle := rssBytes(s.Cmd.Process.Pid)
			var wg sync.WaitGroup
			next := atomic.Uint64{}
			for range 16 {
				wg.Go(func() {
					for n := next.Add(1); n <= pending; n = next.Add(1) {
						_, _, _ = s.callback(n, `{"kind":"rest"}`)
					}
				})
			}
			wg.Wait()
			before, t0 := tr.calls.Load(), time.Now()
			var goroutines float64
			var rss int64
			for time.Since(t0) < 10*time.Second {
				time.Sleep(500 * time.Millisecond)
				if g, err := s.tryMetric("go_goroutines"); err == nil {
					goroutines = max(goroutines, g)
				}
				rss = max(rss, rssBytes(s.Cmd.Process.Pid))
			}
			rate := float64(tr.calls.Load()-before) / time.Since(t0).Seconds()
			lines := strings.Count(s.Log.String(), "outbox action will be retried")
			t.Logf("TaskRouter answering %s, %d pending: %.1f REST calls/s, at most %v goroutines, RSS at most %d MB (%d MB idle), %d retry log lines",
				mode, pending, rate, goroutines, rss>>20, idle>>20, lines)
		})
	}
}
