package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

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
)

// actionsBucket holds one record per ReservationSid.
var actionsBucket = []byte("actions")

// recordVersion is bumped when record changes incompatibly.
const recordVersion = 1

// record is an action as stored: JSON, so that the file can be read with
// bbolt's own tools when something goes wrong.
type record struct {
	Version        int                 `json:"v"`
	State          string              `json:"state"`
	ReservationSid string              `json:"reservation_sid"`
	TaskSid        string              `json:"task_sid"`
	WorkspaceSid   string              `json:"workspace_sid"`
	WorkerSid      string              `json:"worker_sid,omitempty"`
	Rule           string              `json:"rule,omitempty"`
	Params         map[string][]string `json:"params"`
	Received       time.Time           `json:"received"`
	Due            time.Time           `json:"due"`
	Deadline       time.Time           `json:"deadline"`
	Finished       time.Time           `json:"finished,omitzero"`
}

func newRecord(a Action) record {
	return record{
		Version:        recordVersion,
		State:          statePending,
		ReservationSid: a.ReservationSid,
		TaskSid:        a.TaskSid,
		WorkspaceSid:   a.WorkspaceSid,
		WorkerSid:      a.WorkerSid,
		Rule:           a.Rule,
		Params:         a.Params,
		Received:       a.Received,
		Due:            a.Due,
		Deadline:       a.Deadline,
	}
}

func (r record) action() Action {
	return Action{
		ReservationSid: r.ReservationSid,
		TaskSid:        r.TaskSid,
		WorkspaceSid:   r.WorkspaceSid,
		WorkerSid:      r.WorkerSid,
		Rule:           r.Rule,
		Params:         url.Values(r.Params),
		Received:       r.Received,
		Due:            r.Due,
		Deadline:       r.Deadline,
	}
}

// expired says whether a record no longer needs remembering.
func (r record) expired(now time.Time) bool {
	return r.State != statePending && !r.Deadline.After(now)
}

// store is the bbolt file behind an Outbox.
//
// Inserts and finishes go through one committer goroutine that commits
// whatever writes are waiting in a single transaction: a lone write is
// committed at once, and a burst shares one fsync instead of queueing for
// one each (an fsync costs milliseconds on common disks). Every write
// returns only after its transaction is committed and synced.
type store struct {
	db     *bolt.DB
	writes chan *write
	quit   chan struct{}
	done   chan struct{}
}

// write is one change for the committer. fn runs inside the shared
// transaction; an error from it fails the whole batch, so fn reports
// its own outcome some other way and returns only bbolt's errors.
type write struct {
	fn  func(b *bolt.Bucket) error
	err chan error
}

// maxBatch bounds one transaction.
const maxBatch = 1000

func openStore(path string) (*store, error) {
	// The timeout turns a second process on the same state dir into an
	// error instead of a hang on the file lock.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("outbox: %s is locked by another process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(actionsBucket)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox: init %s: %w", path, err)
	}
	s := &store{db: db, writes: make(chan *write), quit: make(chan struct{}), done: make(chan struct{})}
	go s.commit()
	return s, nil
}

func (s *store) close() error {
	close(s.quit)
	<-s.done
	return s.db.Close()
}

// do runs fn in a committed transaction.
func (s *store) do(fn func(b *bolt.Bucket) error) error {
	w := &write{fn: fn, err: make(chan error, 1)}
	// writes is unbuffered: once the send succeeds the committer owns w
	// and will answer it, even if the store is closing.
	select {
	case s.writes <- w:
		return <-w.err
	case <-s.quit:
		return ErrClosed
	}
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
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(actionsBucket)
			for _, w := range batch {
				if err := w.fn(b); err != nil {
					return err
				}
			}
			return nil
		})
		for _, w := range batch {
			w.err <- err
		}
	}
}

func decode(v []byte) (record, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return r, err
	}
	if r.Version != recordVersion {
		return r, fmt.Errorf("record version %d, want %d", r.Version, recordVersion)
	}
	return r, nil
}

// insert stores a as pending unless its reservation is already known.
func (s *store) insert(a Action, now time.Time) (bool, error) {
	key := []byte(a.ReservationSid)
	val, err := json.Marshal(newRecord(a))
	if err != nil {
		return false, fmt.Errorf("outbox: encode action: %w", err)
	}
	inserted := false
	err = s.do(func(b *bolt.Bucket) error {
		if old := b.Get(key); old != nil {
			// An unreadable record still names a reservation we have
			// seen; refusing the duplicate is the safe side.
			if r, err := decode(old); err != nil || !r.expired(now) {
				return nil
			}
		}
		inserted = true
		return b.Put(key, val)
	})
	if err != nil {
		return false, fmt.Errorf("outbox: store action: %w", err)
	}
	return inserted, nil
}

// finish marks a reservation's action finished, or deletes it when its
// deadline has passed already.
func (s *store) finish(sid, state string, now time.Time) error {
	key := []byte(sid)
	var bad error
	err := s.do(func(b *bolt.Bucket) error {
		v := b.Get(key)
		if v == nil {
			return nil
		}
		r, err := decode(v)
		if err != nil {
			bad = fmt.Errorf("decode %s: %w", sid, err)
			return nil
		}
		r.State, r.Finished = state, now
		if r.expired(now) {
			return b.Delete(key)
		}
		val, err := json.Marshal(r)
		if err != nil {
			bad = fmt.Errorf("encode %s: %w", sid, err)
			return nil
		}
		return b.Put(key, val)
	})
	if err != nil {
		return err
	}
	return bad
}

// load returns the pending actions, and deletes (returning them as
// expired) pending actions past their deadline together with finished
// ones that no longer need remembering. unreadable lists the keys of
// records that do not decode.
func (s *store) load(now time.Time) (pending, expired []Action, unreadable []string, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		pending, expired, unreadable = nil, nil, nil
		b := tx.Bucket(actionsBucket)
		var drop [][]byte
		err := b.ForEach(func(k, v []byte) error {
			r, err := decode(v)
			switch {
			case err != nil:
				// Kept, so the reservation is still deduplicated
				// until an operator looks; it cannot be sent.
				unreadable = append(unreadable, string(k))
			case r.State == statePending && r.Deadline.Before(now):
				expired = append(expired, r.action())
				drop = append(drop, bytes.Clone(k))
			case r.State == statePending:
				pending = append(pending, r.action())
			case r.expired(now):
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Deleting inside ForEach would skip keys; delete afterwards.
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("outbox: load: %w", err)
	}
	return pending, expired, unreadable, nil
}

// gc deletes finished actions past their deadline and says how many.
func (s *store) gc(now time.Time) (int, error) {
	var drop [][]byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		drop = drop[:0]
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
		return nil
	})
	return len(drop), err
}
