package outbox

import (
	"context"
	"errors"
	"sync"
)

// Lifecycle is what a backend's Run and Close share: one Run at a time, none after Close,
// and a Close that stops the Run in progress and waits for it. The zero value is open and
// not running.
type Lifecycle struct {
	mu      sync.Mutex
	closed  bool
	running bool
	stop    context.CancelFunc // stops the current Run
	stopped chan struct{}      // closed when the current Run has returned
}

// Closed reports whether Close has been called.
func (l *Lifecycle) Closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Begin starts a Run. It returns a child of ctx that Close cancels, and end, which the Run
// calls (deferred) when it returns. It fails with ErrClosed after Close, and with an error
// while another Run is going.
func (l *Lifecycle) Begin(ctx context.Context) (context.Context, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, ErrClosed
	}
	if l.running {
		return nil, nil, errors.New("outbox: already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	l.running, l.stop, l.stopped = true, cancel, stopped
	end := func() {
		cancel()
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
		close(stopped)
	}
	return ctx, end, nil
}

// Close marks the outbox closed, then stops the Run in progress, if any, and waits for it
// to return. It reports false, and does nothing, when Close was called before.
func (l *Lifecycle) Close() bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.closed = true
	stop, stopped := l.stop, l.stopped
	l.mu.Unlock()
	if stop != nil {
		stop()
		<-stopped
	}
	return true
}
