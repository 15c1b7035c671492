package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// peer is one server under test.
type peer struct {
	name, label string
	shape       string   // the generated rules' shape, if any
	cmd         []string // program and arguments, without the listen address
	env         []string // added to a cleaned environment
	bare, flask bool     // how the listen address is passed
	ready       string   // path that answers 200 once the peer serves
	want        []byte   // the expected answer (JSON); nil: any 200
}

// flaskApp is the assignment callback handler of Twilio's TaskRouter quickstart for Python,
// at the step where the server accepts the reservation in its answer:
// https://www.twilio.com/docs/taskrouter/quickstart/python/reservations-accept-callback
// (the step before it, .../reservations-assignment-callback, answers {} the same way).
// The quickstart starts it with app.run(debug=True); it runs here with app.run() and only
// the port given, because the debugger and the reloader would slow Flask down and flatter
// the comparison.
const flaskApp = `import sys
from flask import Flask, Response

app = Flask(__name__)

@app.route('/assignment_callback', methods=['POST', 'GET'])
def assignment_callback():
    """Respond to assignment callbacks with an acceptance and 200 response"""
    ret = '{"instruction": "accept"}'
    resp = Response(response=ret, status=200, mimetype='application/json')
    return resp

if __name__ == "__main__":
    app.run(port=int(sys.argv[1]))
`

// serveBare is the bare peer: a net/http handler that parses the form and answers {}, the
// least a callback handler can do. /readyz answers like reservist's so that start-up is
// measured the same way.
func serveBare(addr string) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.Write([]byte("{}"))
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	})
	return http.ListenAndServe(addr, h)
}

// children are the processes the runner started. Each runs in its own process group, so
// that a Ctrl-C in the terminal reaches only the runner, which then ends them all.
type children struct {
	mu    sync.Mutex
	procs map[int]*child
}

type child struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when Wait returns
	err    error         // Wait's, once exited is closed
}

// start starts a child and waits until readyURL answers 200, returning how long that took
// from just before the process was started.
func (c *children) start(ctx context.Context, args, env []string, log io.Writer, readyURL string) (*os.Process, time.Duration, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig ends a child even if the runner itself is killed with SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	ch := &child{cmd: cmd, exited: make(chan struct{})}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	if c.procs == nil {
		c.procs = map[int]*child{}
	}
	c.procs[cmd.Process.Pid] = ch
	c.mu.Unlock()
	go func() {
		ch.err = cmd.Wait()
		close(ch.exited)
	}()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	deadline := time.After(20 * time.Second)
	for {
		resp, err := client.Get(readyURL)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd.Process, time.Since(began), nil
			}
		}
		select {
		case <-ch.exited:
			c.forget(cmd.Process.Pid)
			return nil, 0, fmt.Errorf("%s exited before it was ready: %v", args[0], ch.err)
		case <-deadline:
			c.stop(cmd.Process)
			return nil, 0, fmt.Errorf("%s was not ready within 20s", args[0])
		case <-ctx.Done():
			c.stop(cmd.Process)
			return nil, 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// stop ends a child: SIGTERM to its group, SIGKILL after five seconds.
func (c *children) stop(p *os.Process) {
	c.mu.Lock()
	ch := c.procs[p.Pid]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	syscall.Kill(-p.Pid, syscall.SIGTERM)
	select {
	case <-ch.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.Pid, syscall.SIGKILL)
		<-ch.exited
	}
	c.forget(p.Pid)
}

func (c *children) forget(pid int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.procs, pid)
}

// killAll ends every child still running, at once: the runner is exiting.
func (c *children) killAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for pid := range c.procs {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	c.procs = nil
}

// cleanEnv is the runner's environment without reservist's and Twilio's variables, so that
// the user's own settings cannot change what is measured.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RESERVIST_") || strings.HasPrefix(kv, "TWILIO_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// peakRSS is the process's VmHWM in KiB: the most memory it has held resident.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}

// goldenResponse is the "response" of a golden file: the answer reservist must give.
func goldenResponse(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var g struct {
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(b, &g); err != nil || len(g.Response) == 0 {
		return nil, fmt.Errorf("%s: no response: %v", path, err)
	}
	return g.Response, nil
}

// request is the signed callback every peer is sent.
type request struct {
	url, body, signature string
	want                 []byte // JSON the answer must equal; nil: any 200
	exact                []byte // the answer's exact bytes, learnt by check
}

func (r *request) newHTTP(ctx context.Context) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url, strings.NewReader(r.body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", r.signature)
	return req
}

// check sends the callback once and checks the answer, which the latency run then expects
// byte for byte.
func (r *request) check(ctx context.Context) error {
	resp, err := http.DefaultClient.Do(r.newHTTP(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	if r.want != nil {
		var got, want any
		if err := json.Unmarshal(body, &got); err != nil {
			return fmt.Errorf("answer %s is not JSON", body)
		}
		if err := json.Unmarshal(r.want, &want); err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("answer %s; want %s", body, r.want)
		}
	}
	r.exact = bytes.Clone(body)
	return nil
}
