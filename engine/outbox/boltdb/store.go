package boltdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// States of a stored action. Only pending actions are carried out; the
// others are kept until the reservation's deadline so that a second
// callback for the same reservation is recognised.
const (
	statePending   = "pending"
	stateDone      = "done"
	stateFailed    = "failed"
	stateAbandoned = "abandoned"
	stateDryRun    = "dry_run"
	// stateSuperseded: TaskRouter said the reservation is no longer pending, or an Event
	// callback said it or its task is over.
	stateSuperseded = "superseded"
	stateWithdrawn  = "withdrawn" // committed after its caller had answered the callback without it
)

// actionsBucket holds one record per ReservationSid.
var actionsBucket = []byte("actions")

// recordVersion is bumped when record changes incompatibly. Version 1 kept the parameters
// as form text; version 2 keeps them typed, as the Action has them.
const recordVersion = 2

// record is an action as stored: JSON, so that the file can be read with bbolt's own tools
// when something goes wrong.
type record struct {
	Version int    `json:"v"`
	State   string `json:"state"`
	outbox.Action
	Finished time.Time `json:"finished,omitzero"`
}

func newRecord(a outbox.Action) record {
	return record{Version: recordVersion, State: statePending, Action: a}
}

// expired says whether a record no longer needs remembering.
func (r record) expired(now time.Time) bool {
	return r.State != statePending && !r.Deadline.After(now)
}

// store is the bbolt file behind an Outbox.
//
// Inserts and finishes go through one committer goroutine that commits whatever writes
// are waiting in a single transaction: a lone write is committed at once, and a burst
// shares one fsync instead of queueing for one each (an fsync costs milliseconds on common
// disks). Every write returns only after its transaction is committed and synced, or when
// its caller's context ends first.
//
// One write's error never fails the others of its transaction: the transaction is run
// again without it. Before each transaction the committer checks that the path still names
// the file it holds open; if the state directory was removed, the writes fail (they would
// land in a file nobody can open again) and the committer writes the file out anew from
// the open copy, then carries on.
type store struct {
	path   string
	db     *bolt.DB
	health *outbox.StoreHealth
	log    *slog.Logger
	writes chan *write
	quit   chan struct{}
	done   chan struct{}

	committing atomic.Int64 // unix nanoseconds when the running commit began; 0 when none runs

	fileMu sync.Mutex
	file   *os.File // reservist's own descriptor on the file bbolt opened, to compare with the path

	// Tests stand in for a frozen or failing disk with these: hold runs before each
	// commit, fail inside it (its error fails the whole transaction).
	testHold atomic.Pointer[func()]
	testFail atomic.Pointer[func() error]

	// Owned by the committer goroutine.
	withdrawals []string // reservations whose insert committed after its caller gave up
	lost        bool     // the file was found removed and is not written out anew yet
	stuck       bool     // writing it out anew failed, and the log has said why
}

// write is one change for the committer.
type write struct {
	op string // what a failure counts as: outbox.StoreOpPut, …
	// fn runs inside the shared transaction, perhaps more than once (when another write of
	// the transaction fails, it runs again without that one). An error fails this write
	// alone.
	fn func(tx *bolt.Tx) error
	// late, when set, runs on the committer if fn's change committed after its caller
	// gave up waiting.
	late  func()
	state atomic.Int32
	err   chan error
}

// States of a write: the caller and the committer race for it with compare-and-swap, so
// that exactly one of them decides what the caller is told.
const (
	writeWaiting   = iota // sent to the committer, not yet in a transaction
	writeTaken            // in a transaction
	writeAbandoned        // its caller gave up waiting
	writeAnswered         // the committer told the caller the outcome
)

// maxBatch bounds one transaction.
const maxBatch = 1000

// errOneWrite aborts a transaction because one of its writes failed.
var errOneWrite = errors.New("one write failed")

func openStore(path string, health *outbox.StoreHealth, log *slog.Logger) (*store, error) {
	db, f, err := openDB(path)
	if err != nil {
		return nil, err
	}
	s := &store{path: path, db: db, file: f, health: health, log: log,
		writes: make(chan *write), quit: make(chan struct{}), done: make(chan struct{})}
	go s.commit()
	return s, nil
}

// openDB opens the bbolt file at path, made ready for the outbox, with reservist's own
// descriptor on the same file.
func openDB(path string) (*bolt.DB, *os.File, error) {
	var db *bolt.DB
	err := protect(func() (err error) {
		// The timeout turns a second process on the same state dir into an error instead
		// of a hang on the file lock.
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		return err
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, nil, fmt.Errorf("outbox: %s is locked by another process", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	err = protect(func() error {
		missing := false
		if err := db.View(func(tx *bolt.Tx) error { missing = tx.Bucket(actionsBucket) == nil; return nil }); err != nil || !missing {
			return err
		}
		return db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(actionsBucket)
			return err
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("outbox: init %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("outbox: %w", err)
	}
	return db, f, nil
}

// closeWait bounds how long close waits for a commit under way: a frozen disk must not
// hold shutdown. A commit cut off by the process's exit is one bbolt recovers from.
const closeWait = 5 * time.Second

func (s *store) close() error {
	close(s.quit)
	select {
	case <-s.done:
	case <-time.After(closeWait):
		return fmt.Errorf("outbox: %s: a commit did not finish within %v; left to the process's exit", s.path, closeWait)
	}
	s.fileMu.Lock()
	_ = s.file.Close()
	s.fileMu.Unlock()
	return s.db.Close()
}

// do runs w in a committed transaction, or gives up when ctx ends first: the error then
// wraps ctx's, and w's change is withdrawn through w.late if it commits after all.
func (s *store) do(ctx context.Context, w *write) error {
	w.err = make(chan error, 1)
	// writes is unbuffered: once the send succeeds the committer owns w and will answer
	// it, even if the store is closing.
	select {
	case s.writes <- w:
	case <-ctx.Done():
		return s.gaveUp(w, ctx)
	case <-s.quit:
		return outbox.ErrClosed
	}
	select {
	case err := <-w.err:
		return err
	case <-ctx.Done():
		if w.state.CompareAndSwap(writeWaiting, writeAbandoned) || w.state.CompareAndSwap(writeTaken, writeAbandoned) {
			return s.gaveUp(w, ctx)
		}
		return <-w.err // answered meanwhile
	}
}

// gaveUp counts a write whose caller stopped waiting for it.
func (s *store) gaveUp(w *write, ctx context.Context) error {
	err := fmt.Errorf("outbox: the store did not commit in time: %w", context.Cause(ctx))
	s.health.Failed(w.op, err)
	return err
}

func (s *store) commit() {
	defer close(s.done)
	for {
		var batch []*write
		select {
		case w := <-s.writes:
			batch = append(batch, w)
		case <-s.quit:
			return
		}
		// Take what else is waiting, without waiting for more.
	more:
		for len(batch) < maxBatch {
			select {
			case w := <-s.writes:
				batch = append(batch, w)
			default:
				break more
			}
		}
		s.run(batch)
	}
}

// run commits a batch of writes, and the withdrawals left from earlier ones.
func (s *store) run(batch []*write) {
	live := make([]*write, 0, len(batch)) // run drops failed writes from its own copy
	for _, w := range batch {
		if w.state.CompareAndSwap(writeWaiting, writeTaken) {
			live = append(live, w)
		}
	}
	batch = live
	if err := s.checkFile(); err != nil {
		for _, w := range batch {
			s.answer(w, err)
		}
		return
	}
	for {
		var bad *write
		var badErr error
		withdrawals := s.withdrawals
		start := time.Now()
		s.committing.Store(start.UnixNano())
		if hold := s.testHold.Load(); hold != nil {
			(*hold)()
		}
		err := protect(func() error {
			return s.db.Update(func(tx *bolt.Tx) error {
				if fail := s.testFail.Load(); fail != nil {
					if err := (*fail)(); err != nil {
						return err
					}
				}
				if err := withdraw(tx, withdrawals, start); err != nil {
					return err
				}
				for _, w := range batch {
					if err := w.fn(tx); err != nil {
						bad, badErr = w, err
						return errOneWrite
					}
				}
				return nil
			})
		})
		s.committing.Store(0)
		if bad != nil && errors.Is(err, errOneWrite) {
			s.answer(bad, badErr)
			batch = slices.DeleteFunc(batch, func(w *write) bool { return w == bad })
			continue
		}
		if err == nil {
			s.withdrawals = s.withdrawals[len(withdrawals):]
			s.health.Worked()
		}
		for _, w := range batch {
			s.answer(w, err)
		}
		return
	}
}

// answer tells a write's caller its outcome, unless the caller gave up: then a change
// that committed is withdrawn.
func (s *store) answer(w *write, err error) {
	if !w.state.CompareAndSwap(writeTaken, writeAnswered) {
		if err == nil && w.late != nil {
			w.late()
		}
		return
	}
	if err != nil {
		s.health.Failed(w.op, err)
	}
	w.err <- err
}

// withdraw marks pending actions withdrawn: their callers answered the callback without
// them. The record stays until its deadline, so that the reservation is still known.
func withdraw(tx *bolt.Tx, sids []string, now time.Time) error {
	b := tx.Bucket(actionsBucket)
	for _, sid := range sids {
		v := b.Get([]byte(sid))
		if v == nil {
			continue
		}
		r, err := decode(v)
		if err != nil || r.State != statePending {
			continue
		}
		r.State, r.Finished = stateWithdrawn, now
		val, err := json.Marshal(r)
		if err != nil {
			continue
		}
		if err := b.Put([]byte(sid), val); err != nil {
			return err
		}
	}
	return nil
}

// errFileGone says why writes fail while the path does not name the open file.
type errFileGone struct{ path string }

func (e errFileGone) Error() string {
	return fmt.Sprintf("%s was removed or replaced while reservist ran: actions written to it now would be lost at the next start", e.path)
}

// checkFile reports whether the path still names the file bbolt holds open (its Stat and
// the open file's Fstat agree). When the file is gone, with or without its directory, it
// writes the open copy out anew at the path and carries on with that; when something else
// is at the path it leaves it alone and fails.
func (s *store) checkFile() error {
	if s.sameFile() {
		return nil
	}
	gone := errFileGone{s.path}
	if !s.lost {
		s.lost = true
		s.log.Error("outbox store file removed or replaced while running; writing it out anew", slog.String("path", s.path))
	}
	if err := s.rewrite(); err != nil {
		if !s.stuck { // the checks try again every second; once is enough to say why
			s.stuck = true
			s.log.Warn("outbox store file cannot be written out anew yet; trying again", slog.String("path", s.path), slog.String("error", err.Error()))
		}
		return gone
	}
	s.lost, s.stuck = false, false
	s.log.Info("outbox store file written out anew from the open copy: no pending action is lost", slog.String("path", s.path))
	return nil
}

// sameFile reports whether the path names the open file.
func (s *store) sameFile() bool {
	s.fileMu.Lock()
	own, err := s.file.Stat()
	s.fileMu.Unlock()
	if err != nil {
		return false
	}
	at, err := os.Stat(s.path)
	return err == nil && os.SameFile(own, at)
}

// rewrite writes the open database out at the path, which must be free, and reopens it
// there. It runs on the committer, so that no write lands in between.
func (s *store) rewrite() error {
	if _, err := os.Lstat(s.path); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("something else is at %s now; move it away, or restart reservist", s.path)
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, FileName+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = protect(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			_, err := tx.WriteTo(tmp)
			return err
		})
	})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// A link, unlike a rename, never replaces a file that appeared at the path meanwhile.
	if err := os.Link(tmp.Name(), s.path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	db, f, err := openDB(s.path)
	if err != nil {
		return err
	}
	_ = s.db.Close()
	s.db = db
	s.fileMu.Lock()
	_ = s.file.Close()
	s.file = f
	s.fileMu.Unlock()
	return nil
}

// stuckFor is how long the running commit has taken, 0 when none runs.
func (s *store) stuckFor(now time.Time) time.Duration {
	if t := s.committing.Load(); t != 0 {
		return now.Sub(time.Unix(0, t))
	}
	return 0
}

func decode(v []byte) (record, error) {
	var version struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(v, &version); err != nil {
		return record{}, err
	}
	switch version.V {
	case recordVersion:
		var r record
		err := json.Unmarshal(v, &r)
		return r, err
	case 1:
		return decodeV1(v)
	}
	return record{}, fmt.Errorf("record version %d, want %d", version.V, recordVersion)
}

// decodeV1 reads a record that an older reservist wrote, with the parameters as form text,
// so that actions pending across an upgrade are still carried out.
func decodeV1(v []byte) (record, error) {
	var r struct {
		record
		Params map[string][]string `json:"params"`
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return record{}, err
	}
	out := r.record
	out.Version = recordVersion
	out.Params = make(outbox.Params, len(r.Params))
	for k, vals := range r.Params {
		switch {
		case v1Lists[k]:
			out.Params[k] = vals
		case len(vals) != 1:
			return record{}, fmt.Errorf("parameter %s has %d values", k, len(vals))
		case v1Ints[k]:
			n, err := strconv.Atoi(vals[0])
			if err != nil {
				return record{}, fmt.Errorf("parameter %s: %q is not an integer", k, vals[0])
			}
			out.Params[k] = n
		case v1Bools[k]:
			b, err := strconv.ParseBool(vals[0])
			if err != nil {
				return record{}, fmt.Errorf("parameter %s: %q is not a boolean", k, vals[0])
			}
			out.Params[k] = b
		default:
			out.Params[k] = vals[0]
		}
	}
	return out, nil
}

// The REST parameters that version 1 records keep as text but that are not strings; every
// other parameter is one. A test holds these to the instruction table.
var (
	v1Ints  = map[string]bool{"DequeueTimeout": true, "CallTimeout": true, "Timeout": true, "MaxParticipants": true}
	v1Bools = map[string]bool{"CallAccept": true, "RedirectAccept": true, "Record": true, "Muted": true,
		"StartConferenceOnEnter": true, "EndConferenceOnExit": true, "EndConferenceOnCustomerExit": true,
		"BeepOnCustomerEntrance": true, "EarlyMedia": true}
	v1Lists = map[string]bool{"DequeueStatusCallbackEvent": true, "StatusCallbackEvent": true, "ConferenceStatusCallbackEvent": true}
)

// insert stores a as pending unless its reservation is already known. When ctx ends
// before the commit, it fails, and the record is withdrawn if the commit lands after all.
func (s *store) insert(ctx context.Context, a outbox.Action, now time.Time) (bool, error) {
	w, inserted, err := s.insertWrite(a, now)
	if err != nil {
		return false, err
	}
	if err := s.do(ctx, w); err != nil {
		return false, fmt.Errorf("outbox: store action: %w", err)
	}
	return *inserted, nil
}

// insertWrite is insert's write; inserted says, once it committed, whether it stored a.
func (s *store) insertWrite(a outbox.Action, now time.Time) (w *write, inserted *bool, err error) {
	key := []byte(a.ReservationSid)
	val, err := json.Marshal(newRecord(a))
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: encode action: %w", err)
	}
	if len(key) > bolt.MaxKeySize || len(val) > bolt.MaxValueSize {
		return nil, nil, fmt.Errorf("outbox: action too large to store")
	}
	inserted = new(bool)
	w = &write{op: outbox.StoreOpPut, fn: func(tx *bolt.Tx) error {
		*inserted = false
		b := tx.Bucket(actionsBucket)
		if old := b.Get(key); old != nil {
			// An unreadable record still names a reservation we have seen; refusing the
			// duplicate is the safe side.
			if r, err := decode(old); err != nil || !r.expired(now) {
				return nil
			}
		}
		*inserted = true
		return b.Put(key, val)
	}}
	w.late = func() {
		if *inserted {
			s.withdrawals = append(s.withdrawals, a.ReservationSid)
		}
	}
	return w, inserted, nil
}

// outcome is how an action ended, to record.
type outcome struct {
	sid, state string
	at         time.Time
}

// finish records how actions ended, or deletes those whose deadline has passed already.
// A record that does not decode is left as it is.
func (s *store) finish(ctx context.Context, outcomes []outcome) error {
	return s.do(ctx, &write{op: outbox.StoreOpFinish, fn: func(tx *bolt.Tx) error {
		b := tx.Bucket(actionsBucket)
		for _, o := range outcomes {
			key := []byte(o.sid)
			v := b.Get(key)
			if v == nil {
				continue
			}
			r, err := decode(v)
			if err != nil {
				continue
			}
			r.State, r.Finished = o.state, o.at
			if r.expired(o.at) {
				if err := b.Delete(key); err != nil {
					return err
				}
				continue
			}
			val, err := json.Marshal(r)
			if err != nil {
				continue
			}
			if err := b.Put(key, val); err != nil {
				return err
			}
		}
		return nil
	}})
}

// probeBucket holds the probe's record, apart from the actions.
var probeBucket = []byte("probe")

// probe writes and deletes a record the size of an action's, to learn whether the store
// works again after a failure.
func (s *store) probe(ctx context.Context) error {
	return s.do(ctx, &write{op: outbox.StoreOpCheck, fn: func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(probeBucket)
		if err != nil {
			return err
		}
		if err := b.Put([]byte("probe"), make([]byte, 512)); err != nil {
			return err
		}
		return b.Delete([]byte("probe"))
	}})
}

// load returns the pending actions, and deletes (returning them as expired) pending
// actions past their deadline together with finished ones that no longer need
// remembering. unreadable lists the keys of records that do not decode.
func (s *store) load(now time.Time) (pending, expired []outbox.Action, unreadable []string, err error) {
	var drop [][]byte
	err = protect(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(actionsBucket).ForEach(func(k, v []byte) error {
				r, err := decode(v)
				switch {
				case err != nil:
					// Kept, so the reservation is still deduplicated until an operator
					// looks; it cannot be sent.
					unreadable = append(unreadable, string(k))
				case r.State == statePending && r.Deadline.Before(now):
					expired = append(expired, r.Action)
					drop = append(drop, bytes.Clone(k))
				case r.State == statePending:
					pending = append(pending, r.Action)
				case r.expired(now):
					drop = append(drop, bytes.Clone(k))
				}
				return nil
			})
		})
	})
	if err == nil && len(drop) > 0 {
		err = protect(func() error {
			return s.db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(actionsBucket)
				for _, k := range drop {
					if err := b.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("outbox: load: %w", err)
	}
	return pending, expired, unreadable, nil
}

// gc deletes finished actions past their deadline and says how many.
func (s *store) gc(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.do(ctx, &write{op: outbox.StoreOpFinish, fn: func(tx *bolt.Tx) error {
		var drop [][]byte
		b := tx.Bucket(actionsBucket)
		err := b.ForEach(func(k, v []byte) error {
			if r, err := decode(v); err == nil && r.expired(now) {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(drop)
		return nil
	}})
	return n, err
}
