package testkit

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary builds the reservist command once per test binary and returns its path: for tests
// of what only a whole process shows (SIGKILL, SIGTERM, damaged files, exit codes).
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	root := Root(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "reservist-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "reservist")
		cmd := exec.Command(goTool(), "build", "-o", binary, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// goTool is the go command that runs the tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// FreePort is a loopback TCP address nothing listens on right now.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Process is the reservist binary running `serve` as a child process.
type Process struct {
	Cmd   *exec.Cmd
	URL   string // http://ADDR of the callback listener
	Admin string // http://ADDR of the admin listener, "" when off
	Log   *LogBuffer
	// Done is closed when the process has exited; Err is then what Wait returned.
	Done chan struct{}
	Err  error
}

// StartProcess runs bin serve with args (flags other than --listen and --admin-listen,
// which it chooses) and env added to the test's environment, and returns once /readyz
// answers 200. The process is killed when the test ends, if it still runs.
func StartProcess(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := LaunchProcess(t, bin, env, args...)
	p.WaitReady(t, 30*time.Second)
	return p
}

// LaunchProcess is StartProcess without the wait for readiness: for processes that must
// start together, or that are not meant to become ready.
func LaunchProcess(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{URL: "http://" + FreePort(t), Admin: "http://" + FreePort(t), Log: &LogBuffer{}, Done: make(chan struct{})}
	all := append([]string{"serve", "--listen", strings.TrimPrefix(p.URL, "http://"), "--admin-listen", strings.TrimPrefix(p.Admin, "http://")}, args...)
	p.Cmd = exec.Command(bin, all...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stderr = p.Log
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.Err = p.Cmd.Wait()
		close(p.Done)
	}()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.Done
	})
	return p
}

// WaitReady waits until /readyz answers 200, failing the test if the process exits or within
// passes first.
func (p *Process) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		select {
		case <-p.Done:
			t.Fatalf("reservist exited at start: %v\n%s", p.Err, p.Log)
		default:
		}
		if code, _ := p.Ready(); code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reservist was not ready after %v:\n%s", within, p.Log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ready is what /readyz answers now: its status and body, or 0 when it cannot be reached.
func (p *Process) Ready() (int, string) {
	resp, err := http.Get(p.URL + "/readyz")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

// Post sends a callback to path, signed with token (unsigned when token is empty).
func (p *Process) Post(t testing.TB, path, token string, params url.Values) (int, string) {
	t.Helper()
	return Post(t, p.URL+path, token, params)
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Wait waits for the process to exit and returns its exit code.
func (p *Process) Wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.Done:
	case <-time.After(within):
		t.Fatalf("reservist did not exit within %v:\n%s", within, p.Log)
	}
	if p.Cmd.ProcessState == nil {
		return -1
	}
	return p.Cmd.ProcessState.ExitCode()
}
