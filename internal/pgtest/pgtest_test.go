package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	if os.Getenv(orphanChildEnv) != "" {
		orphanChild()
		return
	}
	os.Exit(Main(m))
}

const orphanChildEnv = "PGTEST_ORPHAN_CHILD"

// orphanChild starts a server, says where it is, and waits to be killed.
func orphanChild() {
	s, err := New()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(s.proc.cmd.Process.Pid, s.dir)
	io.Copy(io.Discard, os.Stdin) // until the parent closes it or dies
	s.Close()
}

// TestNoOrphan: a test process killed with SIGKILL, so that no cleanup runs, does not leave
// its server running, and a later server removes the directory it left.
func TestNoOrphan(t *testing.T) {
	Shared(t) // skips where PostgreSQL is unavailable
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanChildEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var pid int
	var dir string
	if _, scanErr := fmt.Sscan(line, &pid, &dir); err != nil || scanErr != nil {
		t.Fatalf("the child said %q (%v, %v)", line, err, scanErr)
	}
	if !alive(pid) {
		t.Fatalf("the child's postgres (pid %d) is not running", pid)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for alive(pid) {
		if ctx.Err() != nil {
			t.Fatalf("postgres (pid %d) outlived its killed test process", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed child's directory: %v", err)
	}
	sweepLeftovers()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after a sweep: %v", dir, err)
	}
}

func connect(t *testing.T, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func count(t *testing.T, ctx context.Context, url string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n); err != nil {
		t.Fatalf("counting: %v", err)
	}
	return n
}

// TestServerLifecycle starts a server with fsync on, gives it two databases, and checks
// that committed rows survive a restart and a kill, and that nothing is left afterwards.
func TestServerLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	s := Start(t, Fsync(true))
	if !strings.HasPrefix(s.URL(), "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(s.URL(), "/postgres?sslmode=disable") {
		t.Errorf("URL() = %q", s.URL())
	}
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share the URL %s", a)
	}

	ca := connect(t, ctx, a)
	var fsync string
	if err := ca.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Errorf("fsync = %q, %v; want on", fsync, err)
	}
	if _, err := ca.Exec(ctx, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	cb := connect(t, ctx, b)
	var exists bool
	if err := cb.QueryRow(ctx, "SELECT to_regclass('kept') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("the second database sees the first one's table (%v, %v)", exists, err)
	}

	port := s.Port()
	s.Restart(t)
	if s.Port() != port {
		t.Errorf("the port changed across a restart: %d, then %d", port, s.Port())
	}
	// The connection from before the restart is gone.
	if err := ca.Ping(ctx); err == nil {
		t.Error("a connection from before the restart still works")
	}
	if n := count(t, ctx, a); n != 2 {
		t.Errorf("after a restart the table has %d rows, want 2", n)
	}

	ca = connect(t, ctx, a)
	if _, err := ca.Exec(ctx, "INSERT INTO kept VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	s.Kill(t)
	if s.Running() {
		t.Error("Running() after Kill")
	}
	s.Resume(t)
	if n := count(t, ctx, a); n != 3 {
		t.Errorf("after a kill and a start the table has %d rows, want 3", n)
	}
	if log, err := s.Log(); err != nil || !strings.Contains(log, "not properly shut down") {
		t.Errorf("the log does not show a crash recovery after Kill (%v)", err)
	}

	pid := s.proc.cmd.Process.Pid
	dir := s.dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("postgres (pid %d) is still there after Close: %v", pid, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after Close: %v", dir, err)
	}
	stopped, cancelStopped := context.WithTimeout(ctx, 5*time.Second)
	defer cancelStopped()
	if conn, err := pgx.Connect(stopped, a); err == nil {
		conn.Close(ctx)
		t.Error("the server still accepts connections after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// TestShared checks that Shared hands every test the same running server, with fsync off.
func TestShared(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := Shared(t)
	if Shared(t) != s {
		t.Fatal("two calls of Shared gave two servers")
	}
	conn := connect(t, ctx, s.NewDatabase(t))
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "off" {
		t.Errorf("fsync = %q, %v; want off by default", fsync, err)
	}
	var maxConn string
	if err := conn.QueryRow(ctx, "SHOW max_connections").Scan(&maxConn); err != nil || maxConn != "100" {
		t.Errorf("max_connections = %q, %v", maxConn, err)
	}
}

// TestSetting checks that a Setting reaches the server and overrides a default.
func TestSetting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := Start(t, Setting("max_connections", "20"))
	conn := connect(t, ctx, s.URL())
	var maxConn string
	if err := conn.QueryRow(ctx, "SHOW max_connections").Scan(&maxConn); err != nil || maxConn != "20" {
		t.Errorf("max_connections = %q, %v; want 20", maxConn, err)
	}
}

// TestDatabaseName keeps names unique, lower-case and within PostgreSQL's 63 bytes.
func TestDatabaseName(t *testing.T) {
	for _, tc := range []struct {
		test string
		seq  int64
		want string
	}{
		{"TestX", 1, "t1_testx"},
		{"TestX/sub_case#01", 12, "t12_testx_sub_case_01"},
		{strings.Repeat("A", 100), 3, "t3_" + strings.Repeat("a", 60)},
	} {
		if got := databaseName(tc.test, tc.seq); got != tc.want {
			t.Errorf("databaseName(%q, %d) = %q, want %q", tc.test, tc.seq, got, tc.want)
		}
	}
}

// fakeTB records how skipOrFail ended a test, without ending this one.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()                      {}
func (f *fakeTB) Skip(...any)                  { f.skipped = true }
func (f *fakeTB) Fatal(...any)                 { f.failed = true }
func (f *fakeTB) Fatalf(string, ...any)        { f.failed = true }
func (f *fakeTB) Logf(format string, _ ...any) {}

// TestUnavailable: without binaries New says what to install, and the test is skipped,
// except under CI=true, where it fails.
func TestUnavailable(t *testing.T) {
	t.Setenv("PGTEST_BINDIR", t.TempDir())
	_, err := New()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("New with an empty PGTEST_BINDIR: %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("the error does not say what to install: %v", err)
	}

	t.Setenv("CI", "")
	f := &fakeTB{TB: t}
	skipOrFail(f, err)
	if !f.skipped || f.failed {
		t.Errorf("outside CI: skipped %v, failed %v; want a skip", f.skipped, f.failed)
	}

	t.Setenv("CI", "true")
	f = &fakeTB{TB: t}
	skipOrFail(f, err)
	if !f.failed {
		t.Error("under CI=true an unavailable PostgreSQL did not fail the test")
	}

	t.Setenv("CI", "")
	f = &fakeTB{TB: t}
	skipOrFail(f, errors.New("pgtest: initdb: exit status 1"))
	if !f.failed {
		t.Error("a server that fails to start was not a failure")
	}
}

// TestVersionedDirs: the newest major version is tried first.
func TestVersionedDirs(t *testing.T) {
	empty := t.TempDir()
	if got := versionedDirs(filepath.Join(empty, "none")); len(got) != 0 {
		t.Errorf("versionedDirs of a missing directory = %v", got)
	}
	for _, v := range []string{"9.6", "15", "13", "notaversion"} {
		if err := os.MkdirAll(filepath.Join(empty, "pg", v, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := versionedDirs(filepath.Join(empty, "pg"))
	want := []string{"15", "13", "9.6"}
	if len(got) != len(want) {
		t.Fatalf("versionedDirs = %v", got)
	}
	for i, w := range want {
		if got[i] != filepath.Join(empty, "pg", w, "bin") {
			t.Errorf("versionedDirs[%d] = %s, want version %s", i, got[i], w)
		}
	}
}
