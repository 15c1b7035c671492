package server

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the reason label of reservist_http_connections_closed_total.
const (
	ClosedIdle    = "idle"    // an idle connection (or one that never sent a request) closed to make room
	ClosedRefused = "refused" // a new connection closed at once: every connection was busy with a request
)

// newConnGrace is how long a new connection may stay silent before it counts as idle and
// may be closed to make room: TaskRouter sends its request as soon as it connects.
const newConnGrace = time.Second

// ConnMetrics count the connections of every limited listener, by listener.
type ConnMetrics struct {
	open   *prometheus.GaugeVec
	limit  *prometheus.GaugeVec
	closed *prometheus.CounterVec
}

// NewConnMetrics creates the metrics; Register exposes them.
func NewConnMetrics() *ConnMetrics {
	return &ConnMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reservist_http_connections",
			Help: "Connections open on a listener (callback or admin).",
		}, []string{"listener"}),
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reservist_http_connections_limit",
			Help: "Most connections a listener keeps open; past it the oldest idle one is closed to make room.",
		}, []string{"listener"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_http_connections_closed_total",
			Help: "Connections a listener closed at its limit, by reason: idle (an idle or silent connection closed to make room) or refused (a new one closed, every other busy).",
		}, []string{"listener", "reason"}),
	}
}

// Register adds the metrics to reg.
func (m *ConnMetrics) Register(reg prometheus.Registerer) error {
	return registerAll(reg, m.open, m.limit, m.closed)
}

// Conns bounds the connections a listener keeps open, so that a flood of idle keep-alive
// connections can neither exhaust the process's file descriptors nor shut TaskRouter out.
// At the limit a new connection takes the place of the oldest idle one (or of one that has
// sent nothing for a second); only when every connection is busy with a request is the new
// one closed at once. Wrap the listener with Listener and set the http.Server's ConnState
// to ConnState.
type Conns struct {
	name string
	max  int
	m    *ConnMetrics

	mu    sync.Mutex
	conns map[net.Conn]*conn
	quiet list.List // of *conn not serving a request, longest quiet first
}

type conn struct {
	c     net.Conn
	since time.Time     // quiet since
	fresh bool          // has not sent a request yet
	elem  *list.Element // in quiet; nil while serving a request
}

// NewConns limits a listener named name ("callback", "admin") to max connections, counting
// into m (nil: metrics nobody collects).
func NewConns(name string, max int, m *ConnMetrics) *Conns {
	if m == nil {
		m = NewConnMetrics()
	}
	c := &Conns{name: name, max: max, m: m, conns: map[net.Conn]*conn{}}
	m.limit.WithLabelValues(name).Set(float64(max))
	m.open.WithLabelValues(name).Set(0)
	m.closed.WithLabelValues(name, ClosedIdle)
	m.closed.WithLabelValues(name, ClosedRefused)
	return c
}

// Listener wraps ln so that what it accepts stays within the limit.
func (c *Conns) Listener(ln net.Listener) net.Listener { return &limited{Listener: ln, conns: c} }

type limited struct {
	net.Listener
	conns *Conns
}

func (l *limited) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.conns.admit(nc, time.Now()) {
			return nc, nil
		}
		_ = nc.Close()
	}
}

// admit takes a new connection in, making room if it must.
func (c *Conns) admit(nc net.Conn, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.conns) >= c.max {
		var victim *conn
		for e := c.quiet.Front(); e != nil; e = e.Next() {
			if k := e.Value.(*conn); !k.fresh || now.Sub(k.since) >= newConnGrace {
				victim = k
				break
			}
		}
		if victim == nil {
			c.m.closed.WithLabelValues(c.name, ClosedRefused).Inc()
			return false
		}
		c.drop(victim)
		_ = victim.c.Close() // its server goroutine ends on the closed connection
		c.m.closed.WithLabelValues(c.name, ClosedIdle).Inc()
	}
	k := &conn{c: nc, since: now, fresh: true}
	k.elem = c.quiet.PushBack(k)
	c.conns[nc] = k
	c.m.open.WithLabelValues(c.name).Set(float64(len(c.conns)))
	return true
}

// drop forgets a connection; mu must be held.
func (c *Conns) drop(k *conn) {
	if k.elem != nil {
		c.quiet.Remove(k.elem)
		k.elem = nil
	}
	delete(c.conns, k.c)
	c.m.open.WithLabelValues(c.name).Set(float64(len(c.conns)))
}

// ConnState is the http.Server's ConnState hook: it follows each connection from busy to
// idle to closed.
func (c *Conns) ConnState(nc net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.conns[nc]
	if !ok {
		return // closed to make room already
	}
	switch st {
	case http.StateActive:
		k.fresh = false
		if k.elem != nil {
			c.quiet.Remove(k.elem)
			k.elem = nil
		}
	case http.StateIdle:
		if k.elem == nil {
			k.since = time.Now()
			k.elem = c.quiet.PushBack(k)
		}
	case http.StateHijacked, http.StateClosed:
		c.drop(k)
	}
}

// Open is how many connections are open now.
func (c *Conns) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}
