// Package faults holds only tests: the fault-injection suite that runs the real reservist
// binary on loopback against a fake TaskRouter and breaks what it depends on, to show that
// no fault loses an acknowledged action, crashes the process or wedges it.
//
// The faults: SIGKILL during bursts of callbacks (every acknowledged action is delivered
// after a restart), damaged store files of each kind (refused with exit 3, never a crash),
// the state directory removed while running, the rules path replaced by a FIFO, a huge file,
// a device or a slow in-place writer, a TaskRouter that answers 500 or 429 or hangs with
// thousands of actions pending (goroutines, memory and the call rate bounded), floods of idle
// connections, and oversized SIDs among normal callbacks.
//
// Every test is bounded in time and count and stops by itself. RESERVIST_FAULTS_BINARY
// names another build to run the suite against (an older one, to see what it fixes); by
// default the suite builds the repository's own. Run it alone with
//
//	go test ./internal/faults -v
package faults
