package pgtest

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// shared is the one server of a test binary that runs under Main.
var shared struct {
	mu      sync.Mutex
	inMain  bool
	opts    []Option
	started bool
	srv     *Server
	err     error
}

// Main runs a package's tests and then closes the server that Shared started, if any. Call
// it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// The options are those of the shared server.
func Main(m *testing.M, opts ...Option) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.opts = opts
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.inMain = false
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
		shared.srv = nil
	}
	return code
}

// Shared returns the test binary's shared server, starting it on first use. Tests that use
// it must not stop or restart it (others are using it): they take a database each with
// NewDatabase, and a test that stops its server starts its own with Start. It needs Main
// in the package's TestMain, which closes the server; it skips or fails tb like Start when
// PostgreSQL cannot run here.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.mu.Lock()
	if !shared.inMain {
		shared.mu.Unlock()
		tb.Fatal("pgtest.Shared needs the package's TestMain to run its tests through pgtest.Main, which stops the server")
	}
	if !shared.started {
		shared.started = true
		shared.srv, shared.err = New(shared.opts...)
	}
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if err != nil {
		skipOrFail(tb, err)
	}
	return srv
}
