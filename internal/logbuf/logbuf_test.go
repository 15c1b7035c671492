package logbuf

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the flusher goroutine and the test.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWriterBatchesWholeLines(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 16)
	w.Write([]byte("one 1234\n"))                      // 9 bytes: buffered
	w.Write([]byte("two 1234\n"))                      // would make 18: flushes "one" first
	w.Write([]byte("a line longer than the buffer\n")) // flushes "two", then goes through
	if got, want := out.String(), "one 1234\ntwo 1234\na line longer than the buffer\n"; got != want {
		t.Fatalf("written %q; want %q", got, want)
	}
	w.Write([]byte("three\n"))
	if got := out.String(); strings.Contains(got, "three") {
		t.Fatalf("written %q before a flush; want three held back", got)
	}
	w.Direct().Write([]byte("warning\n"))
	if got, want := out.String(), "one 1234\ntwo 1234\na line longer than the buffer\nthree\nwarning\n"; got != want {
		t.Fatalf("after a direct write: %q; want %q (buffered lines first)", got, want)
	}
}

func TestRunFlushesPeriodicallyAndAtTheEnd(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 1<<10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, time.Millisecond); close(done) }()

	w.Write([]byte("tick\n"))
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "tick\n" {
		if time.Now().After(deadline) {
			t.Fatal("the periodic flush never wrote the line")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	w.Write([]byte("late\n"))
	w.Flush()
	if got := out.String(); got != "tick\nlate\n" {
		t.Fatalf("written %q; want tick then late", got)
	}
}

func TestConcurrentWritersKeepLinesWhole(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 100)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			line := []byte(strings.Repeat(string(rune('a'+i)), 20) + "\n")
			for range 200 {
				if i%2 == 0 {
					w.Write(line)
				} else {
					w.Direct().Write(line)
				}
			}
		})
	}
	wg.Wait()
	w.Flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines; want 1600", len(lines))
	}
	for _, l := range lines {
		if len(l) != 20 || strings.Count(l, l[:1]) != 20 {
			t.Fatalf("line %q was split or mixed", l)
		}
	}
}
