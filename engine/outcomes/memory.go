package outcomes

import (
	"sync"
	"time"
)

// shards split the memory so that callbacks on different cores rarely wait for one lock.
const shards = 16

// memory remembers decisions by ReservationSid, each shard in a map and a ring of the same
// entries in the order they were recorded, which is (near enough) the order of their time:
// the oldest are forgotten from the ring's head when they pass the window or when the shard
// is full. Nothing in it is a pointer, so the garbage collector does not scan it.
type memory struct {
	window uint32 // seconds
	base   int64  // Unix seconds that at counts from
	shards [shards]shard
}

// sid is a ReservationSid's 32 hex digits as bytes: WR is implied.
type sid [16]byte

type shard struct {
	mu sync.Mutex
	m  map[sid]entry
	// ring holds the entries' keys in the order they were recorded, a circular buffer of n
	// slots from head, grown as needed up to max.
	ring []slot
	head int
	n    int
	max  int
}

// entry is one decision: when (seconds since base), by which rule (see names), and whether
// its outcome was counted already.
type entry struct {
	at      uint32
	rule    uint16
	counted bool
}

// slot is an entry's place in the ring.
type slot struct {
	key sid
	at  uint32
}

func newMemory(max int, window time.Duration, now time.Time) *memory {
	m := &memory{window: uint32(window / time.Second), base: now.Unix() - 1}
	per := (max + shards - 1) / shards
	for i := range m.shards {
		m.shards[i] = shard{m: map[sid]entry{}, max: per}
	}
	return m
}

// seconds is t in the memory's own seconds.
func (m *memory) seconds(t time.Time) uint32 {
	s := t.Unix() - m.base
	switch {
	case s < 0:
		return 0
	case s > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(s)
}

func (m *memory) shard(k sid) *shard { return &m.shards[k[15]%shards] }

// insert remembers a decision; a reservation remembered already keeps its first one. It
// reports whether a decision still within the window had to be forgotten to make room.
func (m *memory) insert(k sid, rule uint16, at time.Time) (evicted bool) {
	now := m.seconds(at)
	s := m.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Past the window, counted from the time being recorded: no clock is read here.
	for s.n > 0 && s.ring[s.head].at+m.window < now {
		s.forgetOldest()
	}
	if _, ok := s.m[k]; ok {
		return false
	}
	if s.n == s.max {
		evicted = s.forgetOldest()
	}
	if s.n == len(s.ring) {
		s.grow()
	}
	s.ring[(s.head+s.n)%len(s.ring)] = slot{key: k, at: now}
	s.n++
	s.m[k] = entry{at: now, rule: rule}
	return evicted
}

// forgetOldest drops the ring's oldest entry; it reports whether the map still had it.
func (s *shard) forgetOldest() bool {
	old := s.ring[s.head]
	s.head = (s.head + 1) % len(s.ring)
	s.n--
	if e, ok := s.m[old.key]; ok && e.at == old.at {
		delete(s.m, old.key)
		return true
	}
	return false
}

// grow doubles the ring, up to max.
func (s *shard) grow() {
	next := make([]slot, min(s.max, max(64, 2*len(s.ring))))
	for i := range s.n {
		next[i] = s.ring[(s.head+i)%len(s.ring)]
	}
	s.ring, s.head = next, 0
}

// resolve finds a decision made within the window before now and marks its outcome
// counted; first is false when it was counted before.
func (m *memory) resolve(k sid, now time.Time) (rule uint16, found, first bool) {
	s := m.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok || e.at+m.window < m.seconds(now) {
		return 0, false, false
	}
	if e.counted {
		return e.rule, true, false
	}
	e.counted = true
	s.m[k] = e
	return e.rule, true, true
}

func (m *memory) len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// String is the SID as TaskRouter writes it: WR and 32 lower-case hex digits.
func (k sid) String() string {
	const digits = "0123456789abcdef"
	var b [34]byte
	b[0], b[1] = 'W', 'R'
	for i, c := range k {
		b[2+2*i], b[3+2*i] = digits[c>>4], digits[c&0xf]
	}
	return string(b[:])
}

// parseSid reads a ReservationSid: WR and 32 hex digits.
func parseSid(s string) (k sid, ok bool) {
	if len(s) != 34 || s[0] != 'W' || s[1] != 'R' {
		return k, false
	}
	for i := range k {
		hi, lo := unhex(s[2+2*i]), unhex(s[3+2*i])
		if hi > 0xf || lo > 0xf {
			return k, false
		}
		k[i] = hi<<4 | lo
	}
	return k, true
}

// unhex is the value of a hex digit, and 0xff for any other byte.
var unhexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
		t[c-'a'+'A'] = c - 'a' + 10
	}
	return t
}()

func unhex(c byte) byte { return unhexTable[c] }
