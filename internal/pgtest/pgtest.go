// Package pgtest starts a private, throwaway PostgreSQL server for tests.
//
// Each server has its own data directory, socket directory and loopback port, so tests can
// start, stop, kill and restart it without touching any other PostgreSQL on the machine.
// It is meant for tests that must hold against a real server (locks, LISTEN/NOTIFY, a
// database that goes away and comes back), not for speed: a server takes about a second to
// create, so a package's tests should share one (Main and Shared) and take a database each
// (NewDatabase), and only tests that stop or restart the server start their own (Start).
//
// The binaries are found with `pg_config --bindir`, on PATH, or in
// /usr/lib/postgresql/*/bin (Debian keeps them off PATH), or in $PGTEST_BINDIR. initdb and
// postgres refuse to run as root, so as root they run as the postgres system user, in a
// directory under the system temp directory (a test's t.TempDir() sits below directories
// that user cannot enter). When PostgreSQL is not installed the tests that need it are
// skipped, except under CI=true, where a machine without it is a broken CI and they fail.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Option changes how a server is set up.
type Option func(*options)

type options struct {
	fsync        bool
	settings     []string
	startTimeout time.Duration
}

// Fsync turns the server's fsync on or off (off by default). Off makes commits cheap, and
// loses nothing when only the server stops or crashes, since the operating system still
// holds what was written; a test that claims durability in its name may want it on anyway.
func Fsync(on bool) Option { return func(o *options) { o.fsync = on } }

// Setting passes a server setting (postgres -c name=value), after the defaults, so that it
// overrides them.
func Setting(name, value string) Option {
	return func(o *options) { o.settings = append(o.settings, name+"="+value) }
}

// StartTimeout bounds how long creating the server, and each later start, may take
// (60 s by default, for a loaded two-core machine running tests under the race detector).
func StartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

// Server is one throwaway PostgreSQL server. Its methods may be called from several
// goroutines; those that take a testing.TB fail the test on an error, and so must be
// called from the test's goroutine.
type Server struct {
	bin  binaries
	cred *syscall.Credential
	opts options

	dir, dataDir, sockDir, logPath string
	port                           int

	dbSeq atomic.Int64

	mu     sync.Mutex
	proc   *proc // nil while stopped
	closed bool
}

// proc is one run of the postgres server process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // the result of Wait, set before done is closed
}

// Start creates and starts a server for tb and closes it when tb ends. It skips tb when
// PostgreSQL cannot run here (see ErrUnavailable), or fails it under CI=true.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := New(opts...)
	if err != nil {
		skipOrFail(tb, err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			if log, err := s.Log(); err == nil {
				tb.Logf("pgtest: the end of the server's log:\n%s", tail([]byte(log), 4096))
			}
		}
		if err := s.Close(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// skipOrFail ends tb for an error of New: a skip when PostgreSQL is merely not installed
// here, a failure under CI=true (where it must be) and for any other error.
func skipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrUnavailable) {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%v (CI=true: a CI machine must have PostgreSQL)", err)
		}
		tb.Skip(err)
		return
	}
	tb.Fatal(err)
}

// New creates and starts a server. The caller must Close it. Errors that mean PostgreSQL
// cannot run on this machine wrap ErrUnavailable.
func New(opts ...Option) (*Server, error) {
	s := &Server{opts: options{startTimeout: 60 * time.Second}}
	for _, o := range opts {
		o(&s.opts)
	}
	var err error
	if s.bin, err = findBinaries(); err != nil {
		return nil, err
	}
	if s.cred, err = runAs(); err != nil {
		return nil, err
	}
	sweepLeftovers()
	if err := s.create(); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) create() error {
	deadline := time.Now().Add(s.opts.startTimeout)
	var err error
	if s.dir, err = os.MkdirTemp(os.TempDir(), dirPrefix); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	// The owner file lets a later run remove this directory if this process dies without
	// closing the server (a test binary killed at its -timeout, say).
	if err := os.WriteFile(filepath.Join(s.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	s.dataDir = filepath.Join(s.dir, "data")
	s.sockDir = filepath.Join(s.dir, "sock")
	s.logPath = filepath.Join(s.dir, "postgres.log")
	if err := os.Mkdir(s.sockDir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := chownAll(s.dir, s.cred); err != nil {
		return fmt.Errorf("pgtest: giving %s to the postgres user: %w", s.dir, err)
	}
	if err := s.initdb(deadline); err != nil {
		return err
	}
	// The port is chosen free and then handed to postgres, so another process can take it
	// in between: a failure to bind is retried on another port.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		err = s.launch(deadline)
		if err == nil || attempt == 4 || !errors.Is(err, errBind) {
			return err
		}
	}
}

func (s *Server) initdb(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin.initdb,
		"-D", s.dataDir, "--no-sync", "--no-instructions",
		"-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C")
	cmd.Dir = s.dir
	cmd.Env = childEnv(s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, tail(out, 2048))
	}
	return nil
}

// errBind marks a start that failed because the port was taken.
var errBind = errors.New("pgtest: the port is taken")

// launch starts postgres and waits until it accepts connections.
func (s *Server) launch(deadline time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("pgtest: the server is closed")
	}
	if s.proc != nil {
		return errors.New("pgtest: the server is already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	logStart, _ := logf.Seek(0, 2)
	fsync := "off"
	if s.opts.fsync {
		fsync = "on"
	}
	args := []string{
		"-D", s.dataDir, "-p", strconv.Itoa(s.port), "-k", s.sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=" + fsync,
		// Small: the machines that run these tests have two cores, and a package's tests
		// may run a few servers at once.
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=100",
		// Dynamic shared memory in the data directory rather than /dev/shm, so that a
		// killed server leaves nothing behind once its directory is removed.
		"-c", "dynamic_shared_memory_type=mmap",
	}
	for _, kv := range s.opts.settings {
		args = append(args, "-c", kv)
	}
	cmd := exec.Command(s.bin.postgres, args...)
	cmd.Dir = s.dir
	cmd.Env = childEnv(s.dir)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group, so that a kill reaches the backends too; and SIGQUIT (an
	// immediate shutdown) if the test process dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred, Pdeathsig: syscall.SIGQUIT}

	p := &proc{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal is sent when the thread that started the child ends, not
		// the process: this goroutine keeps its thread until postgres has exited, and then
		// ends it with itself (it never unlocks).
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			logf.Close()
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	s.proc = p
	if err := s.waitReady(p, deadline); err != nil {
		s.killLocked()
		log, _ := os.ReadFile(s.logPath)
		if int64(len(log)) > logStart {
			log = log[logStart:]
		}
		if bindFailure.Match(log) {
			return fmt.Errorf("%w: %v", errBind, err)
		}
		return fmt.Errorf("%v; the server's log:\n%s", err, tail(log, 2048))
	}
	return nil
}

var bindFailure = regexp.MustCompile(`could not bind|could not create any TCP/IP sockets|Address already in use`)

// waitReady polls until the server accepts a connection, it exits, or the deadline passes.
func (s *Server) waitReady(p *proc, deadline time.Time) error {
	delay := 5 * time.Millisecond
	var lastErr error
	for {
		ctx, cancel := context.WithDeadline(context.Background(), earlier(deadline, time.Now().Add(2*time.Second)))
		conn, err := pgx.Connect(ctx, s.URL())
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: the server did not accept connections within %v: %v", s.opts.startTimeout, lastErr)
		}
		select {
		case <-p.done:
			return fmt.Errorf("pgtest: postgres exited while starting: %v", p.err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// URL is the URL of the server's default database, postgres, as the superuser postgres.
func (s *Server) URL() string { return s.DatabaseURL("postgres") }

// DatabaseURL is the URL of the named database on the server.
func (s *Server) DatabaseURL(name string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port is the server's loopback TCP port. It stays the same across Stop and Resume.
func (s *Server) Port() int { return s.port }

// Log returns what the server has logged so far, across restarts.
func (s *Server) Log() (string, error) {
	b, err := os.ReadFile(s.logPath)
	return string(b), err
}

// NewDatabase creates an empty database with a name of its own and returns its URL, so
// that tests can share a server but not state. The database is dropped when tb ends, if
// the server is running then.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := databaseName(tb.Name(), s.dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if !s.Running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends the connections a test left open (its pools are usually closed by
		// cleanups registered after this one, which therefore ran first).
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Logf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return s.DatabaseURL(name)
}

var notName = regexp.MustCompile(`[^a-z0-9]+`)

// databaseName makes a database name from a test's name: unique by seq, readable in the
// server's log, and within PostgreSQL's 63 bytes.
func databaseName(testName string, seq int64) string {
	name := fmt.Sprintf("t%d_%s", seq, strings.Trim(notName.ReplaceAllString(strings.ToLower(testName), "_"), "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Stop shuts the server down the way an operator would (a fast shutdown: sessions are
// ended, the data is checkpointed) and waits for it to exit. Resume starts it again.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.stop(); err != nil {
		tb.Fatal(err)
	}
}

// Kill ends the server and its backends with SIGKILL, as a crash would: clients see their
// connections drop, and the next start recovers from the write-ahead log.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		tb.Fatal("pgtest: Kill: the server is not running")
	}
	s.killLocked()
}

// Resume starts a stopped or killed server again, on the same data and port.
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	if err := s.launch(time.Now().Add(s.opts.startTimeout)); err != nil {
		tb.Fatal(err)
	}
}

// Restart stops the server and starts it again on the same data and port.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop(tb)
	s.Resume(tb)
}

// Close stops the server if it is running and removes its files. It may be called more
// than once.
func (s *Server) Close() error {
	err := s.stop()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("pgtest: %w", rmErr)
	}
	return err
}

// stopTimeout bounds a fast shutdown before it becomes a kill.
const stopTimeout = 30 * time.Second

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	// SIGINT is PostgreSQL's fast shutdown. The postmaster waits for its backends before it
	// exits, so once it has, nothing of the server is left running.
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		s.proc = nil
		return nil
	case <-time.After(stopTimeout):
		s.killLocked()
		return fmt.Errorf("pgtest: the server did not shut down within %v, so it was killed", stopTimeout)
	}
}

// killLocked kills the server's whole process group and waits for the postmaster. The
// group is signalled before the postmaster is reaped, while its id cannot have been reused.
func (s *Server) killLocked() {
	p := s.proc
	if p == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
		// It exited by itself (a failed start), taking its backends with it; its id may
		// already belong to someone else.
		s.proc = nil
		return
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	s.proc = nil
	// The backends die a moment after the postmaster, and until the last one has, a new
	// postmaster refuses the data directory ("pre-existing shared memory block is still in
	// use"). They are orphans by now, so they are watched in /proc rather than waited for.
	deadline := time.Now().Add(10 * time.Second)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// groupAlive reports whether a process other than a zombie is left in process group pgid.
func groupAlive(pgid int) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range procs {
		stat, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// After the command's closing parenthesis: state ppid pgrp ...
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const (
	dirPrefix = "pgtest-"
	ownerFile = "owner.pid"
)

// sweepLeftovers removes the directories of servers whose test process died without
// closing them, once their postgres has exited too. It never signals a process.
func sweepLeftovers() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		owner, err := readPid(filepath.Join(dir, ownerFile))
		if err != nil || alive(owner) {
			continue
		}
		if pm, err := readPid(filepath.Join(dir, "data", "postmaster.pid")); err == nil && alive(pm) {
			continue
		}
		os.RemoveAll(dir)
	}
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// alive reports whether pid is a running process. A zombie counts as gone: the orphans of
// a dead test process wait for whichever process adopted them to reap them.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return false
		}
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
