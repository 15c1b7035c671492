// Package logbuf batches log lines so that writing the decision log does not dominate the
// callback path: one write system call per batch instead of one per line.
package logbuf

import (
	"context"
	"io"
	"sync"
	"time"
)

// Writer buffers whole writes and passes them on in batches, never splitting one: slog
// handlers write each record with one Write, so a batch always ends at a line's end and
// lines written directly (Direct) never land inside another.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
	max int
}

// New returns a Writer that passes batches of up to size bytes to w.
func New(w io.Writer, size int) *Writer {
	return &Writer{w: w, buf: make([]byte, 0, size), max: size}
}

// Write buffers p. A p larger than the buffer is written through at once.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > b.max {
		if err := b.flush(); err != nil {
			return 0, err
		}
		if len(p) > b.max {
			return b.w.Write(p)
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes what is buffered.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flush()
}

func (b *Writer) flush() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0] // a failed batch is dropped: retrying a broken stderr would only block
	return err
}

// Direct returns a writer that writes at once, after what is buffered, keeping the order of
// lines: for the operations log, whose warnings should not wait.
func (b *Writer) Direct() io.Writer { return direct{b} }

type direct struct{ b *Writer }

func (d direct) Write(p []byte) (int, error) {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	if err := d.b.flush(); err != nil {
		return 0, err
	}
	return d.b.w.Write(p)
}

// Run flushes every interval until ctx is done, then flushes once more and returns.
func (b *Writer) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.Flush()
			return
		case <-t.C:
			b.Flush()
		}
	}
}
