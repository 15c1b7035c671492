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

// store is the bbolt file behind an Outbox. Every write is its own
// transaction, committed with fsync before it returns (bbolt's default).
type store struct {
	db *bolt.DB
}

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
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

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
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(actionsBucket)
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
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(actionsBucket)
		v := b.Get(key)
		if v == nil {
			return nil
		}
		r, err := decode(v)
		if err != nil {
			return fmt.Errorf("decode %s: %w", sid, err)
		}
		r.State, r.Finished = state, now
		if r.expired(now) {
			return b.Delete(key)
		}
		val, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return b.Put(key, val)
	})
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
