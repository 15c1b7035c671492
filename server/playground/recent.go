package playground

import (
	"net/url"
	"sync"
	"time"

	"github.com/reservist/reservist/engine"
)

// The bounds of the recent callbacks kept for the page: in memory only, and never more than
// a few MiB however big callbacks get (each may be up to 1 MiB).
const (
	RecentMax   = 50
	recentBytes = 4 << 20
)

// Recent keeps the last RecentMax callbacks in memory for the page's "recent" list. It is
// safe for concurrent use; Observe is cheap enough for the callback path.
type Recent struct {
	mu    sync.Mutex
	ring  [RecentMax]recentItem // the oldest at head, the newest n-1 after it
	head  int
	n     int
	bytes int
	seq   uint64
	now   func() time.Time
}

type recentItem struct {
	id       uint64
	at       time.Time
	params   url.Values // kept as received: encoded only when the page asks
	decided  time.Time  // the callback's time its decision was made at
	rule     string
	revision string
	size     int
}

// NewRecent returns an empty list of recent callbacks.
func NewRecent() *Recent { return &Recent{now: time.Now} }

// Observe keeps a callback, dropping the oldest beyond RecentMax or the byte bound. It fits
// server.Options.Observe; params must not change afterwards.
func (r *Recent) Observe(params url.Values, d *engine.Decision) {
	size := 0
	for k, vs := range params {
		for _, v := range vs {
			size += len(k) + len(v) + 2
		}
	}
	if size > recentBytes {
		return // cannot be kept within the bound; such a callback is no real one anyway
	}
	it := recentItem{at: r.now(), params: params, size: size}
	if d != nil {
		it.rule, it.revision, it.decided = d.Rule, d.Revision, d.At
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	it.id = r.seq
	if r.n == RecentMax {
		r.dropOldest()
	}
	r.ring[(r.head+r.n)%RecentMax] = it
	r.n++
	r.bytes += size
	for r.bytes > recentBytes {
		r.dropOldest()
	}
}

// dropOldest forgets the oldest kept callback; r.mu is held.
func (r *Recent) dropOldest() {
	r.bytes -= r.ring[r.head].size
	r.ring[r.head] = recentItem{} // not kept alive
	r.head = (r.head + 1) % RecentMax
	r.n--
}

// RecentCallback is one kept callback as GET /recent lists it.
type RecentCallback struct {
	ID             uint64    `json:"id"`
	ReceivedAt     time.Time `json:"received_at"`
	ReservationSid string    `json:"reservation_sid"`
	TaskSid        string    `json:"task_sid"`
	WorkerSid      string    `json:"worker_sid"`
	Rule           string    `json:"rule"`     // what decided it when it came in
	Revision       string    `json:"revision"` // of the rules that decided it
	// Form is the parameters as a form body, ready for /decide; one that came without a
	// usable Timestamp has the time it was decided at as its Timestamp.
	Form string `json:"form"`
}

// List returns the kept callbacks, newest first.
func (r *Recent) List() []RecentCallback {
	r.mu.Lock()
	items := make([]recentItem, 0, r.n) // newest first
	for i := r.n - 1; i >= 0; i-- {
		items = append(items, r.ring[(r.head+i)%RecentMax])
	}
	r.mu.Unlock()
	out := make([]RecentCallback, 0, len(items))
	for _, it := range items {
		out = append(out, RecentCallback{
			ID:             it.id,
			ReceivedAt:     it.at,
			ReservationSid: it.params.Get(engine.ParamReservationSid),
			TaskSid:        it.params.Get(engine.ParamTaskSid),
			WorkerSid:      it.params.Get(engine.ParamWorkerSid),
			Rule:           it.rule,
			Revision:       it.revision,
			Form:           engine.WithTimestamp(it.params, it.decided).Encode(),
		})
	}
	return out
}
