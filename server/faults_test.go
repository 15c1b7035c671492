package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/internal/testkit"
)

// An oversized or malformed SID is refused by shape before the outbox sees it: the
// callback is answered as if the outbox could not be written, its neighbours are not
// affected, and the log carries a bounded excerpt.
func TestCallbackBadSidsNeverReachTheOutbox(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.AuthToken = "" })
	huge := "WR" + strings.Repeat("a", 40<<10)
	for _, tc := range []struct {
		name, param, value string
	}{
		{"oversized ReservationSid", "ReservationSid", huge},
		{"ReservationSid with a path", "ReservationSid", "WR../../Workers/WK00000000000000000000000000000004"},
		{"TaskSid of a worker", "TaskSid", testkit.WorkerSid},
		{"oversized WorkerSid", "WorkerSid", "WK" + strings.Repeat("0", 40<<10)},
		{"WorkspaceSid not hex", "WorkspaceSid", "WSzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"},
	} {
		p := callbackParams(`{"kind":"rest"}`)
		p.Set(tc.param, tc.value)
		wantJSON(t, h.post(t, "/assignment_callback", p), 200, `{"instruction":"accept"}`)
		p = callbackParams(`{"kind":"delayed"}`)
		p.Set(tc.param, tc.value)
		wantError(t, h.post(t, "/assignment_callback", p), 503)
	}
	if n := len(h.outbox.Actions()); n != 0 {
		t.Errorf("the outbox got %d actions with bad SIDs", n)
	}
	// Neighbours are decided and stored as usual.
	var wg sync.WaitGroup
	for n := range uint64(50) {
		wg.Go(func() {
			p := callbackParams(`{"kind":"rest"}`)
			p.Set("ReservationSid", testkit.Sid("WR", 100+n))
			if n%5 == 0 {
				p.Set("ReservationSid", huge)
			}
			resp := h.post(t, "/assignment_callback", p)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("callback %d = %d", n, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if n := len(h.outbox.Actions()); n != 40 {
		t.Errorf("the outbox got %d actions; want the 40 with good SIDs", n)
	}
	assertLinesBounded(t, h.log.String(), 2<<10)
}

// assertLinesBounded fails for any log line longer than max bytes.
func assertLinesBounded(t *testing.T, logs string, max int) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if len(sc.Bytes()) > max {
			t.Errorf("a log line of %d bytes: %.200s…", len(sc.Bytes()), sc.Bytes())
		}
	}
}

// A refused signature is logged with what the request said, bounded and the SID by shape.
func TestForbiddenLogIsBounded(t *testing.T) {
	h := newHarness(t)
	p := callbackParams(`{"kind":"rest"}`)
	p.Set("ReservationSid", "WR"+strings.Repeat("9", 500<<10))
	req, err := http.NewRequest("POST", h.srv.URL+"/assignment_callback?"+strings.Repeat("q=1&", 10<<10), strings.NewReader(p.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(SignatureHeader, "bad")
	wantError(t, h.do(t, req), 403)
	recs := h.log.lines(t, "callback signature check failed")
	if len(recs) != 1 || !strings.HasPrefix(recs[0]["reservation_sid"].(string), "not a SID (512002 bytes)") {
		t.Errorf("signature log = %v; want the SID marked as none, with its length", recs)
	}
	assertLinesBounded(t, h.log.String(), 2<<10)
}

// slowOutbox is an outbox whose store is frozen: Put returns only when its context ends.
type slowOutbox struct{ fakeOutbox }

func (s *slowOutbox) Put(ctx context.Context, a outbox.Action) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

// The response budget bounds the whole answer, the store's commit included: a store that
// cannot commit in time is an outbox that cannot be written.
func TestCallbackBudgetCoversTheStore(t *testing.T) {
	const budget = 200 * time.Millisecond
	h := newHarness(t, func(o *Options) { o.Outbox, o.ResponseBudget = &slowOutbox{}, budget })
	for _, tc := range []struct {
		kind, want string
		status     int
	}{
		{"rest", `{"instruction":"accept"}`, 200},
		{"delayed", "", 503},
	} {
		start := time.Now()
		resp := h.post(t, "/assignment_callback", callbackParams(`{"kind":"`+tc.kind+`"}`))
		took := time.Since(start)
		if tc.status == 200 {
			wantJSON(t, resp, 200, tc.want)
		} else {
			wantError(t, resp, tc.status)
		}
		if took > budget+500*time.Millisecond {
			t.Errorf("%s answered after %v; want within the %v budget", tc.kind, took, budget)
		}
	}
}

// REST parameters that come from templates are logged only when they are SIDs; the
// decision's literal ones as written.
func TestCallbackPrivateParams(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.AuthToken = "" })
	if err := writeFile(h.rulesFile, `version: 1
rules:
  - name: callback
    when: true
    do: call
    via: rest
    with:
      from: "+15005550006"
      to: ${ worker.attributes.contact_uri }
      url: https://example.com/twiml
      status_callback_url: ${ "https://example.com/status?task=" + task.sid }
`); err != nil {
		t.Fatal(err)
	}
	if err := h.rules.Reload("test"); err != nil {
		t.Fatal(err)
	}
	wantJSON(t, h.post(t, "/assignment_callback", callbackParams(`{}`)), 200, `{}`)
	acts := h.outbox.Actions()
	if len(acts) != 1 {
		t.Fatalf("%d actions; want 1", len(acts))
	}
	got := acts[0].LogParams()
	want := url.Values{"Instruction": {"call"}, "CallFrom": {"+15005550006"}, "CallTo": {outbox.Redacted},
		"CallUrl": {"https://example.com/twiml"}, "CallStatusCallbackUrl": {outbox.Redacted}}
	if got.Encode() != want.Encode() {
		t.Errorf("LogParams = %v; want %v", got, want)
	}
}

// At its limit a listener closes its oldest idle connection to make room, and refuses a
// new one only while every other is busy with a request.
func TestConnsLimit(t *testing.T) {
	block := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(block) }) }
	defer unblock()
	m := NewConnMetrics()
	conns := NewConns("callback", 4, m)
	srv := &http.Server{ConnState: conns.ConnState, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-block
		}
		w.Write([]byte("ok"))
	})}
	ln := listenLoopback(t)
	go srv.Serve(conns.Listener(ln))
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	// Four idle keep-alive connections, each from a client of its own.
	var idle []*http.Client
	for range 4 {
		c := &http.Client{Transport: &http.Transport{}}
		get(t, c, base+"/")
		idle = append(idle, c)
	}
	testkit.Eventually(t, "four idle connections", func() bool { return conns.Open() == 4 })
	// A fifth client is answered: the oldest idle connection made room.
	get(t, &http.Client{Transport: &http.Transport{}}, base+"/")
	if conns.Open() > 4 {
		t.Errorf("%d connections open; want at most 4", conns.Open())
	}
	if got := counter(m.closed.WithLabelValues("callback", ClosedIdle)); got < 1 {
		t.Errorf("closed{idle} = %v; want at least 1", got)
	}
	for _, c := range idle {
		c.CloseIdleConnections()
	}
	testkit.Eventually(t, "the idle connections closed", func() bool { return conns.Open() <= 1 })

	// Four busy connections: a fifth is refused at once rather than queued.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{}}
			resp, err := c.Get(base + "/block")
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	testkit.Eventually(t, "four busy connections", func() bool {
		conns.mu.Lock()
		defer conns.mu.Unlock()
		return len(conns.conns) == 4 && conns.quiet.Len() == 0
	})
	c := &http.Client{Transport: &http.Transport{}, Timeout: 2 * time.Second}
	if resp, err := c.Get(base + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("a fifth connection beside four busy ones got %d; want it closed", resp.StatusCode)
	}
	if got := counter(m.closed.WithLabelValues("callback", ClosedRefused)); got < 1 {
		t.Errorf("closed{refused} = %v; want at least 1", got)
	}
	unblock()
	wg.Wait()
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func get(t *testing.T, c *http.Client, u string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func counter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
