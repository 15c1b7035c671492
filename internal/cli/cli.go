// Package cli holds what every reservist command shares: exit codes, flag sets that never
// exit the process, positional arguments among flags, and flags that read RESERVIST_*
// variables.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes.
const (
	OK      = 0
	Failed  = 1 // a check or test failed, or the rules are invalid
	Usage   = 2 // bad flag or configuration
	Runtime = 3 // cannot listen, state dir unusable
)

// ExitError carries an exit code out of a command. Its message, if any, has not been
// printed yet.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err with an exit code; a nil err means the reason was printed already.
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// Code prints err (if it has a message) to stderr and maps it to an exit code: an error
// without one is a runtime failure.
func Code(err error, stderr io.Writer) int {
	if err == nil {
		return OK
	}
	ee, ok := errors.AsType[*ExitError](err)
	if !ok {
		fmt.Fprintln(stderr, "reservist:", err)
		return Runtime
	}
	if ee.Err != nil {
		fmt.Fprintln(stderr, "reservist:", ee.Err)
	}
	return ee.Code
}

// NewFlags makes a flag set for a command whose errors go to stderr and never exit.
func NewFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("reservist "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// Parse parses flags that may come before, between or after positional arguments
// (reservist test cases/ --update) and returns the positional ones.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, Exit(OK, nil)
			}
			return nil, Exit(Usage, nil)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// EnvName is the variable that stands in for a flag: RESERVIST_ + NAME with - as _.
func EnvName(flagName string) string {
	return "RESERVIST_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// RulesFlag declares --rules, whose default comes from RESERVIST_RULES: of the flags of
// commands other than serve, only this one reads the environment.
func RulesFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	def := "rules.yaml"
	if v := getenv(EnvName("rules")); v != "" {
		def = v
	}
	return fs.String("rules", def, "the rules `file` (env RESERVIST_RULES)")
}

// List is a repeatable flag. Its default is replaced, not added to, by the first value
// given.
type List struct {
	Values []string
	set    bool
}

func (l *List) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.Values, ",")
}

// Set adds a value.
func (l *List) Set(v string) error {
	if !l.set {
		l.Values, l.set = nil, true
	}
	l.Values = append(l.Values, v)
	return nil
}

// SplitList reads a repeatable flag's variable: comma-separated, blanks ignored.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// FromEnv fills every flag of fs not given on the command line from its RESERVIST_*
// variable (a List's holds a comma-separated list). Flags win over the environment.
func FromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		v := getenv(name)
		if given[f.Name] || v == "" {
			return
		}
		vals := []string{v}
		if _, ok := f.Value.(*List); ok {
			vals = SplitList(v)
		}
		for _, v := range vals {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}
