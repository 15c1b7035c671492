package postgres_test

// End-to-end tests of the shared outbox: the real reservist binary, two replicas (child
// processes) with one PostgreSQL database, the fake TaskRouter. What each holds is what the
// shared outbox promises in docs/outbox.md.

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/pgtest"
	"github.com/reservist/reservist/internal/testkit"
)

// The rules: "now" accepts by REST at once, "later" four seconds after the callback.
var (
	now   = `{"kind":"now"}`
	later = `{"kind":"later"}`
)

const laterDelay = 4 * time.Second

// cluster is the replicas' shared setting: the binary, the database, the fake TaskRouter.
type cluster struct {
	t     *testing.T
	bin   string
	db    string
	fake  *taskroutertest.Server
	rules string
	state string // --state-dir, which nothing may create
}

// newCluster sets up replicas on db; with db "" they get a database of their own on the
// package's shared server, with a small pool so that parallel tests stay within the
// server's connections.
func newCluster(t *testing.T, db string) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: testkit.Binary(t), db: db, fake: taskroutertest.NewServer(taskroutertest.Config{})}
	t.Cleanup(c.fake.Close)
	if c.db == "" {
		c.db = pgtest.Shared(t).NewDatabase(t) + "&pool_max_conns=6"
	}
	dir := t.TempDir()
	c.rules = filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(c.rules, []byte(testkit.Rules(t, "delayed")), 0o644); err != nil {
		t.Fatal(err)
	}
	c.state = filepath.Join(dir, "state")
	t.Cleanup(func() {
		if _, err := os.Stat(c.state); err == nil {
			t.Errorf("a replica on the shared outbox created --state-dir %s", c.state)
		}
	})
	return c
}

// launch starts a replica without waiting for it to be ready.
func (c *cluster) launch() *testkit.Process {
	c.t.Helper()
	p := testkit.LaunchProcess(c.t, c.bin, []string{"TWILIO_ACCOUNT_SID=" + c.fake.AccountSid, "TWILIO_AUTH_TOKEN=" + c.fake.AuthToken},
		"--rules", c.rules, "--outbox", c.db, "--state-dir", c.state, "--reload-poll", "0", "--twilio-base-url", c.fake.URL)
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Logf("replica %s's log:\n%s", p.URL, p.Log)
		}
	})
	return p
}

// start starts n replicas together and waits until every one is ready.
func (c *cluster) start(n int) []*testkit.Process {
	c.t.Helper()
	ps := make([]*testkit.Process, n)
	for i := range ps {
		ps[i] = c.launch()
	}
	for _, p := range ps {
		p.WaitReady(c.t, 60*time.Second)
	}
	return ps
}

// post sends callback n with the attributes to p and checks the answer.
func (c *cluster) post(p *testkit.Process, n uint64, attrs string, wantCode int, wantBody string) {
	c.t.Helper()
	code, body := p.Post(c.t, "/assignment_callback", c.fake.AuthToken, testkit.Callback(n, attrs))
	if code != wantCode || (wantBody != "" && body != wantBody) {
		c.t.Fatalf("callback %d to %s = %d %s; want %d %s", n, p.URL, code, body, wantCode, wantBody)
	}
}

// waitRequests waits until the fake has answered n requests.
func (c *cluster) waitRequests(n int, within time.Duration) []taskroutertest.Request {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	reqs, err := c.fake.WaitRequests(ctx, n)
	if err != nil {
		c.t.Fatal(err)
	}
	return reqs
}

// callbacks are the decision log lines a replica wrote for reservation n.
func callbacks(p *testkit.Process, n uint64) []map[string]any {
	var out []map[string]any
	for _, r := range p.Log.Records("callback") {
		if r["reservation_sid"] == testkit.Sid("WR", n) {
			out = append(out, r)
		}
	}
	return out
}

// duplicates counts the callbacks the replicas decided as duplicates (the outbox held an
// action for the reservation already) and all they decided.
func duplicates(ps ...*testkit.Process) (dup, all int) {
	for _, p := range ps {
		for _, r := range p.Log.Records("callback") {
			all++
			if r["duplicate"] == true {
				dup++
			}
		}
	}
	return dup, all
}

// eventually polls cond for up to within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// perReservation counts the fake's requests by ReservationSid.
func perReservation(reqs []taskroutertest.Request) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		out[r.ReservationSid]++
	}
	return out
}

// The same reservation sent to both replicas at once: one REST call.
func TestReplicasSameReservation(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	ps := c.start(2)
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { c.post(p, 1, now, 200, "{}") })
	}
	wg.Wait()
	c.waitRequests(1, 20*time.Second)
	// The decision log is written within a second: both lines there, one a duplicate.
	eventually(t, 10*time.Second, "both callbacks in the decision logs", func() bool {
		return len(callbacks(ps[0], 1))+len(callbacks(ps[1], 1)) == 2
	})
	if dup, all := duplicates(ps...); dup != 1 || all != 2 {
		t.Errorf("%d of %d callbacks decided as duplicates, want 1 of 2", dup, all)
	}
	if n := len(c.fake.Requests()); n != 1 {
		t.Errorf("%d REST calls for one reservation sent to two replicas, want 1", n)
	}
}

// 200 callbacks spread over both replicas: 200 calls, each once; sent again, each to the
// other replica, none queued.
func TestReplicasSpreadCallbacks(t *testing.T) {
	t.Parallel()
	const n = 200
	srv := pgtest.Start(t) // a server of its own: the burst takes connections
	c := newCluster(t, srv.NewDatabase(t))
	ps := c.start(2)
	send := func(other int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				code, body := ps[(i+other)%2].Post(t, "/assignment_callback", c.fake.AuthToken, testkit.Callback(uint64(i+1), now))
				if code != 200 || body != "{}" {
					t.Errorf("callback %d = %d %s; want 200 {}", i+1, code, body)
				}
			})
		}
		wg.Wait()
	}
	start := time.Now()
	send(0)
	c.waitRequests(n, 60*time.Second)
	t.Logf("%d callbacks over two replicas: the last REST call %v after the first callback", n, time.Since(start).Round(time.Millisecond))
	send(1)
	eventually(t, 10*time.Second, "every callback in the decision logs", func() bool {
		_, all := duplicates(ps...)
		return all == 2*n
	})
	if dup, _ := duplicates(ps...); dup != n {
		t.Errorf("%d callbacks decided as duplicates, want the %d second ones", dup, n)
	}
	reqs := c.fake.Requests()
	per := perReservation(reqs)
	if len(reqs) != n || len(per) != n {
		t.Errorf("%d REST calls for %d reservations, want %d for %d", len(reqs), len(per), n, n)
	}
	for sid, k := range per {
		if k != 1 {
			t.Errorf("%s: %d calls", sid, k)
		}
	}
	sent := [2]int{len(ps[0].Log.Records("outbox action sent")), len(ps[1].Log.Records("outbox action sent"))}
	t.Logf("calls made by each replica: %v", sent)
}

// A delayed action stored by a replica that then goes away (SIGKILL: nothing of it
// survives but the database; SIGTERM: it drains and exits) is carried out once by the
// other, within 10 s of its due time.
func TestReplicaGoneWithADelayedAction(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, "")
			ps := c.start(2)
			gone, survivor := ps[0], ps[1]
			cb := testkit.Callback(1, later)
			// The action is due its delay after the callback's Timestamp (docs/outbox.md).
			ts, err := strconv.ParseInt(cb.Get("Timestamp"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			due := time.Unix(ts, 0).Add(laterDelay)
			if code, body := gone.Post(t, "/assignment_callback", c.fake.AuthToken, cb); code != 200 || body != "{}" {
				t.Fatalf("callback = %d %s; want 200 {}", code, body)
			}
			gone.Signal(t, sig)
			code := gone.Wait(t, 15*time.Second)
			if sig == syscall.SIGTERM && code != 0 {
				t.Errorf("after SIGTERM reservist exited %d, want 0", code)
			}
			if n := len(c.fake.Requests()); n != 0 {
				t.Fatalf("%d REST calls before the action was due", n)
			}
			reqs := c.waitRequests(1, laterDelay+20*time.Second)
			late := reqs[0].Time.Sub(due)
			t.Logf("%s: the other replica sent the action %v after it was due", sig, late.Round(time.Millisecond))
			if late > 10*time.Second {
				t.Errorf("sent %v after its due time, want within 10s", late)
			}
			if late < 0 {
				t.Errorf("sent %v before it was due", -late)
			}
			eventually(t, 10*time.Second, "the survivor's log of the call", func() bool {
				return len(survivor.Log.Records("outbox action sent")) == 1
			})
			c.post(survivor, 1, later, 200, "{}") // TaskRouter may call again: still known
			eventually(t, 10*time.Second, "the repeated callback in the decision log", func() bool { return len(callbacks(survivor, 1)) == 1 })
			if callbacks(survivor, 1)[0]["duplicate"] != true {
				t.Errorf("the repeated callback was not taken for a duplicate: %v", callbacks(survivor, 1)[0])
			}
			if n := len(c.fake.Requests()); n != 1 {
				t.Errorf("%d REST calls, want 1", n)
			}
		})
	}
}

// A replica killed while its REST call is in flight (the fake TaskRouter holds it): the
// other replica sends it again within 30 s. The fake carries the cut-off call out all the
// same, as TaskRouter may, so that the second call is refused as no longer pending.
func TestReplicaKilledMidCall(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	hold := make(chan struct{})
	defer close(hold)
	sid := testkit.Sid("WR", 1)
	c.fake.Inject(sid, taskroutertest.Fault{Hold: hold})
	killed := c.start(1)[0]
	c.post(killed, 1, now, 200, "{}")
	eventually(t, 20*time.Second, "the call in flight", func() bool {
		reqs := c.fake.Requests()
		return len(reqs) == 1 && reqs[0].Status == 0
	})
	survivor := c.start(1)[0]
	killed.Signal(t, syscall.SIGKILL)
	killedAt := time.Now()
	killed.Wait(t, 10*time.Second)

	reqs := c.waitRequests(2, 60*time.Second)
	again := reqs[1].Time.Sub(killedAt)
	t.Logf("the survivor sent the call again %v after the kill", again.Round(time.Millisecond))
	if again > 30*time.Second {
		t.Errorf("sent again %v after the kill, want within 30s", again)
	}
	if reqs[1].ReservationSid != sid {
		t.Errorf("the second call is for %s, want %s", reqs[1].ReservationSid, sid)
	}
	eventually(t, 10*time.Second, "the survivor's log of the refusal", func() bool {
		return len(survivor.Log.Records("outbox action failed")) == 1
	})
	if rec := survivor.Log.Records("outbox action failed")[0]; rec["twilio_code"] != float64(20001) {
		t.Errorf("the second call's refusal: %v, want Twilio's not-pending 20001", rec)
	}
	// The survivor's rescue pass took the job back, or River's own rescuer did when its
	// pass on the leader came first (the job is rescued once either way).
	if n := len(survivor.Log.Records("outbox took back actions whose replica stopped while it held them; another replica carries them out")); n > 1 {
		t.Errorf("%d rescue lines, want at most 1", n)
	}
}

// The database restarted mid-run: nothing stored is lost. While it is down both replicas
// say so on /readyz (503), a decision without delay is answered at once and one with a
// delay gets 503; once it is back they recover by themselves.
func TestReplicasDatabaseRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.Fsync(true))
	c := newCluster(t, srv.NewDatabase(t))
	ps := c.start(2)
	const delayed = 20
	for i := range delayed {
		c.post(ps[i%2], uint64(i+1), later, 200, "{}")
	}

	srv.Stop(t)
	for _, p := range ps {
		eventually(t, 20*time.Second, "/readyz to say the outbox is unreachable", func() bool {
			code, body := p.Ready()
			return code == http.StatusServiceUnavailable && strings.Contains(body, `"outbox":"unreachable"`)
		})
	}
	c.post(ps[0], 100, now, 200, `{"instruction":"accept"}`)
	c.post(ps[1], 101, later, 503, "")
	srv.Resume(t)
	resumed := time.Now()
	for _, p := range ps {
		p.WaitReady(t, 20*time.Second)
	}
	t.Logf("both replicas ready %v after the database was back", time.Since(resumed).Round(time.Millisecond))
	for i := range 5 {
		c.post(ps[i%2], uint64(200+i), now, 200, "{}")
	}
	reqs := c.waitRequests(delayed+5, 60*time.Second)
	per := perReservation(reqs)
	for i := range delayed {
		if sid := testkit.Sid("WR", uint64(i+1)); per[sid] != 1 {
			t.Errorf("%s stored before the restart: %d calls, want 1", sid, per[sid])
		}
	}
	for i := range 5 {
		if sid := testkit.Sid("WR", uint64(200+i)); per[sid] != 1 {
			t.Errorf("%s put after the restart: %d calls, want 1", sid, per[sid])
		}
	}
	for _, n := range []uint64{100, 101} {
		if k := per[testkit.Sid("WR", n)]; k != 0 {
			t.Errorf("callback %d, answered without the outbox: %d REST calls", n, k)
		}
	}
	if len(reqs) != delayed+5 {
		t.Errorf("%d REST calls, want %d", len(reqs), delayed+5)
	}
}

// Replicas starting together on an empty database all become ready: the schema is created
// once, under the lock.
func TestReplicasStartTogether(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	ps := c.start(3)
	created := 0
	for _, p := range ps {
		created += len(p.Log.Records("outbox schema created or upgraded"))
	}
	if created != 1 {
		t.Errorf("%d replicas created the schema, want 1", created)
	}
	c.post(ps[2], 1, now, 200, "{}")
	c.waitRequests(1, 20*time.Second)
}

// A database that cannot be reached at start: the replica starts unready, says why on
// /readyz, answers decisions at once meanwhile, and becomes ready by itself. One that
// refuses it (no such database) stops it: exit 3, naming the database.
func TestReplicaDatabaseAtStart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	c := newCluster(t, srv.NewDatabase(t))
	srv.Stop(t)
	p := c.launch()
	eventually(t, 30*time.Second, "/readyz to say the outbox is unreachable", func() bool {
		code, body := p.Ready()
		return code == http.StatusServiceUnavailable && body == `{"status":"unavailable","rules":"ok","outbox":"unreachable"}`+"\n"
	})
	c.post(p, 1, now, 200, `{"instruction":"accept"}`)
	srv.Resume(t)
	p.WaitReady(t, 20*time.Second)
	if code, body := p.Ready(); body != `{"status":"ok","rules":"ok","outbox":"ok"}`+"\n" {
		t.Errorf("/readyz once the database is back = %d %s", code, body)
	}
	c.post(p, 2, now, 200, "{}")
	reqs := c.waitRequests(1, 20*time.Second)
	if reqs[0].ReservationSid != testkit.Sid("WR", 2) {
		t.Errorf("REST call for %s, want the callback after the database came back", reqs[0].ReservationSid)
	}

	c.db = srv.DatabaseURL("no_such_database")
	refused := c.launch()
	if code := refused.Wait(t, 30*time.Second); code != 3 {
		t.Errorf("with a database that does not exist reservist exited %d, want 3", code)
	}
	// The reason is a JSON log line, as start-up failures follow --log-format.
	if !strings.Contains(refused.Log.String(), `database \"no_such_database\" does not exist`) {
		t.Errorf("the exit does not say why:\n%s", refused.Log)
	}
}
