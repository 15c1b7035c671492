package boltdb

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/internal/testkit"
)

// One write that fails never fails the others committed with it: the transaction runs
// again without it.
func TestOneWriteFailsAlone(t *testing.T) {
	st, err := openStore(filepath.Join(t.TempDir(), FileName), outbox.NewStoreHealth(nil, nil), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	errBad := errors.New("this write is bad")
	var batch []*write
	var inserted []*bool
	for n := range uint64(30) {
		a := outbox.Action{ReservationSid: testkit.Sid("WR", n+1), TaskSid: testkit.Sid("WT", n+1), WorkspaceSid: testkit.WorkspaceSid,
			Params: outbox.Params{"ReservationStatus": "accepted"}, Received: now, Due: now, Deadline: now.Add(time.Minute)}
		w, ok, err := st.insertWrite(a, now)
		if err != nil {
			t.Fatal(err)
		}
		batch, inserted = append(batch, w), append(inserted, ok)
		switch n {
		case 7: // a write of its own that fails
			batch = append(batch, &write{op: outbox.StoreOpPut, fn: func(*bolt.Tx) error { return errBad }})
		case 19: // one that bbolt refuses: a key over its limit, as an oversized SID was
			batch = append(batch, &write{op: outbox.StoreOpPut, fn: func(tx *bolt.Tx) error {
				return tx.Bucket(actionsBucket).Put([]byte(strings.Repeat("W", bolt.MaxKeySize+1)), []byte("{}"))
			}})
		}
	}
	for _, w := range batch {
		w.err = make(chan error, 1)
	}
	st.run(batch) // as the committer would, with every write waiting at once
	good := 0
	for i, w := range batch {
		err := <-w.err
		switch {
		case i == 8:
			if !errors.Is(err, errBad) {
				t.Errorf("the bad write: %v; want its own error", err)
			}
		case i == 21:
			if !errors.Is(err, bolterrors.ErrKeyTooLarge) {
				t.Errorf("the oversized key: %v; want ErrKeyTooLarge", err)
			}
		case err != nil:
			t.Errorf("write %d failed with its neighbours' error: %v", i, err)
		default:
			good++
		}
	}
	for i, ok := range inserted {
		if !*ok {
			t.Errorf("action %d not inserted", i+1)
		}
	}
	if good != 30 {
		t.Errorf("%d good writes committed; want 30", good)
	}
}
