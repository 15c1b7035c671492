package outbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/reservist/reservist/engine/outbox"
)

func TestLifecycle(t *testing.T) {
	var l outbox.Lifecycle
	if l.Closed() {
		t.Fatal("zero Lifecycle is closed")
	}
	ctx, end, err := l.Begin(context.Background())
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if _, _, err := l.Begin(context.Background()); err == nil || errors.Is(err, outbox.ErrClosed) {
		t.Errorf("second Begin while running: %v; want an already-running error", err)
	}

	// Close cancels the Run's context and waits for end.
	ended := make(chan struct{})
	go func() {
		<-ctx.Done()
		end()
		close(ended)
	}()
	if !l.Close() {
		t.Fatal("first Close reported it was closed already")
	}
	select {
	case <-ended:
	default:
		t.Error("Close returned before the Run had ended")
	}
	if !l.Closed() {
		t.Error("Closed() is false after Close")
	}
	if l.Close() {
		t.Error("second Close reported it closed")
	}
	if _, _, err := l.Begin(context.Background()); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Begin after Close: %v; want ErrClosed", err)
	}
}

func TestLifecycleRunsAgain(t *testing.T) {
	var l outbox.Lifecycle
	ctx, end, err := l.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	end()
	if ctx.Err() == nil {
		t.Error("end left the Run's context alive")
	}
	_, end, err = l.Begin(context.Background())
	if err != nil {
		t.Fatalf("Begin after the first Run ended: %v", err)
	}
	end()
	if !l.Close() {
		t.Error("Close with no Run in progress reported it was closed already")
	}
}
