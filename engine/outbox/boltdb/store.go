package boltdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
		return outbox.ErrClosed
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

// insert stores a as pending unless its reservation is already known.
func (s *store) insert(a outbox.Action, now time.Time) (bool, error) {
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
func (s *store) load(now time.Time) (pending, expired []outbox.Action, unreadable []string, err error) {
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
				expired = append(expired, r.Action)
				drop = append(drop, bytes.Clone(k))
			case r.State == statePending:
				pending = append(pending, r.Action)
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
