// Command reservist answers Twilio TaskRouter assignment callbacks from rules.yaml.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes (SPEC §1).
const (
	exitOK      = 0
	exitFailed  = 1 // a check or test failed, or the rules are invalid
	exitUsage   = 2 // bad flag or configuration
	exitRuntime = 3 // cannot listen, state dir unusable
)

// exitError carries an exit code out of run. Its message, if any, has not been printed yet.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exit wraps err with an exit code; a nil err means the reason was already printed.
func exit(code int, err error) error { return &exitError{code: code, err: err} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitCode(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr))
}

// exitCode prints err (if it has a message) and maps it to an exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		fmt.Fprintln(stderr, "reservist:", err)
		return exitRuntime
	}
	if ee.err != nil {
		fmt.Fprintln(stderr, "reservist:", ee.err)
	}
	return ee.code
}

const usage = `usage:
  reservist serve   [flags]                 run the callback server (the default)
  reservist check   [--rules FILE] [--strict]
  reservist test    [--rules FILE] [--update] [--run REGEX] [DIR...]
  reservist explain [--rules FILE] CASE
  reservist schema
  reservist send    [--url URL] CASE
  reservist version

Run 'reservist COMMAND -h' for a command's flags.
`

// run is the whole program: main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-') {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "check":
		return check(args, getenv, stdout, stderr)
	case "test":
		return test(args, getenv, stdout, stderr)
	case "explain":
		return explain(args, getenv, stdout, stderr)
	case "schema":
		return schemaCmd(args, stdout, stderr)
	case "send":
		return send(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "reservist", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "reservist: unknown command %q\n%s", cmd, usage)
	return exit(exitUsage, nil)
}
