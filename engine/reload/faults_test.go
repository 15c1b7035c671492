package reload

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reservist/reservist/internal/testkit"
)

// within runs fn and fails the test if it takes longer than d: what is tested here must
// never block.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s took longer than %v", what, d)
	}
}

// Only regular files are read: a FIFO, a device, a directory or a socket at the path is
// refused at once, naming the path and what is there.
func TestReadFileRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock.yaml")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for path, want := range map[string]string{
		fifo: "a named pipe (FIFO)",
		zero: "a device",
		dir:  "a directory",
		sock: "a socket",
	} {
		within(t, time.Second, "ReadFile("+path+")", func() {
			_, err := ReadFile(path)
			if err == nil || !strings.Contains(err.Error(), path+" is "+want+", not a regular file") {
				t.Errorf("ReadFile(%s) = %v; want it refused as %s", path, err, want)
			}
		})
	}
	// A symlink to a regular file is read, as a ConfigMap's are.
	real := filepath.Join(dir, "real.yaml")
	if err := os.WriteFile(real, []byte("version: 1\nrules: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(link); err != nil || string(b) != "version: 1\nrules: []\n" {
		t.Errorf("ReadFile(symlink) = %q, %v", b, err)
	}
}

// A file over MaxFileSize is refused before it is read: its size costs no memory.
func TestReadFileLimit(t *testing.T) {
	dir := t.TempDir()
	for size, ok := range map[int64]bool{MaxFileSize: true, MaxFileSize + 1: false, 400 << 20: false} {
		path := filepath.Join(dir, fmt.Sprint(size))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil { // sparse: nothing is written
			t.Fatal(err)
		}
		f.Close()
		b, err := ReadFile(path)
		switch {
		case ok && (err != nil || int64(len(b)) != size):
			t.Errorf("ReadFile(%d bytes) = %d bytes, %v; want it read", size, len(b), err)
		case !ok && (err == nil || !strings.Contains(err.Error(), "over the 8 MiB a rules file may be") || !strings.Contains(err.Error(), path)):
			t.Errorf("ReadFile(%d bytes) = %v; want it refused, naming the file and the limit", size, err)
		}
	}
}

// A FIFO put in place of the rules file fails the reload at once; nothing waits on it,
// the old rules keep serving, and a good file put back is loaded.
func TestFIFOAtTheRulesPath(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	w := startWatch(t, r, WatchOptions{Debounce: time.Millisecond})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	within(t, 2*time.Second, "Reload with a FIFO at the path", func() {
		if err := r.Reload("api"); err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("Reload = %v; want it refused as a FIFO", err)
		}
	})
	within(t, time.Second, "Status during a reload", func() {
		if s := r.Status(); !s.Stale || s.Revision != revision(rulesA) {
			t.Errorf("Status = %+v; want rules A still serving, stale", s)
		}
	})
	replaceFile(t, path, rulesB) // rename over the FIFO, as an editor saves
	waitFor(t, "the good file to be loaded", serving(r, rulesB))
	within(t, time.Second, "Watch stopping", w.stop)
}

// Watch returns as soon as its context ends, even while a look at the file is waiting for
// it to settle: shutdown never waits on a reload.
func TestWatchStopsDuringALook(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	r.opts.Settle = 10 * time.Second // from now on
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	looking := make(chan struct{}, 8)
	r.testHookChecked = func(string, bool) {}
	go func() {
		done <- r.Watch(ctx, WatchOptions{Debounce: time.Millisecond, Ready: func() {
			writeFile(t, path, rulesB) // a change: the next look waits 10 s for it to settle
			looking <- struct{}{}
		}})
	}()
	<-looking
	time.Sleep(50 * time.Millisecond) // let the event reach the watcher and its look begin
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Watch did not return within a second of its context ending while a look settled")
	}
}

// A file rewritten in place in chunks is never served half-written: only content that
// reads the same twice a settle time apart replaces the rules. Every prefix written here
// is a valid file (cut at rule boundaries) with fewer rules, the worst case.
func TestSlowWriterNeverServedHalfWritten(t *testing.T) {
	const n = 8
	var full strings.Builder
	full.WriteString("version: 1\nrules:\n")
	var chunks []string
	chunks = append(chunks, full.String())
	for i := range n {
		rule := fmt.Sprintf("  - name: rule-%d\n    when: task.attributes.n == %d\n    do: accept\n", i, i)
		full.WriteString(rule)
		chunks = append(chunks, rule)
	}
	logs := &testkit.LogBuffer{}
	r, path := newReloader(t, rulesA, Options{Settle: DefaultSettle, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	startWatch(t, r, WatchOptions{Debounce: DefaultDebounce})

	seen := map[string]bool{}
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			seen[r.Current().Revision()] = true
			time.Sleep(time.Millisecond)
		}
	}()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		if _, err := f.WriteString(c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // longer than the watcher's debounce
	}
	f.Close()
	waitFor(t, "the whole file to be loaded", serving(r, full.String()))
	close(stop)
	<-watched
	for rev := range seen {
		if rev != revision(rulesA) && rev != revision(full.String()) {
			t.Errorf("revision %.12s served: a half-written file", rev)
		}
	}
}

// A reload that drops most of the rules serves, but says so.
func TestReloadDroppingMostRulesWarns(t *testing.T) {
	file := func(n int) string {
		var b strings.Builder
		b.WriteString("version: 1\nrules:\n")
		for i := range n {
			fmt.Fprintf(&b, "  - name: rule-%d\n    when: task.attributes.n == %d\n    do: accept\n", i, i)
		}
		return b.String()
	}
	logs := &testkit.LogBuffer{}
	r, path := newReloader(t, file(10), Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	const warning = "the reloaded rules have far fewer rules than before; check that the file is complete"
	for _, tc := range []struct {
		rules int
		warns bool
	}{{6, false}, {2, true}, {2, false}, {0, true}} {
		before := len(logs.Records(warning))
		if tc.rules == 0 {
			writeFile(t, path, "version: 1\nrules: []\n")
		} else {
			writeFile(t, path, file(tc.rules)+"# "+fmt.Sprint(tc)+"\n")
		}
		if err := r.Reload("test"); err != nil {
			t.Fatal(err)
		}
		if got := len(logs.Records(warning)) > before; got != tc.warns {
			t.Errorf("reload to %d rules warned %v; want %v", tc.rules, got, tc.warns)
		}
	}
}

// A file at rest — not written to for a settle time — loads on the first read, so that a
// start on an unchanged file is not held up by the settle; a file written just now waits.
func TestFileAtRestLoadsAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, rulesA)
	hourAgo := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, hourAgo, hourAgo); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := New(path, Options{Settle: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("New on a file at rest took %v; want the first read to do, not a minute's settle", took)
	}

	writeFile(t, path, rulesB) // modified now
	start = time.Now()
	if _, err := New(path, Options{Settle: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("New on a file written just now took %v; want it read again a settle (200ms) later", took)
	}
}
