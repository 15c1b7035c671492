// Package cli holds what every reservist command shares: exit codes, the command table with
// its help, usage errors and shell completion, flag sets that never exit the process,
// positional arguments among flags, and flags that read RESERVIST_* variables.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/reservist/reservist/internal/typo"
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
	// Cmd is the command the error is about: its message starts "reservist CMD: ".
	Cmd string
	// Hint ends the message's last line: for a usage error, where the command's flags are
	// explained.
	Hint string
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

// Usagef is a usage error (exit 2): a command line that does not say what to do, or a
// value that cannot be right. Its message is one line naming the problem.
func Usagef(format string, args ...any) error {
	return Exit(Usage, fmt.Errorf(format, args...))
}

// Code prints err (if it has a message) to stderr, one line per line of the message, each
// starting "reservist CMD: ", and maps it to an exit code: an error without one is a
// runtime failure.
func Code(err error, stderr io.Writer) int {
	if err == nil {
		return OK
	}
	ee, ok := errors.AsType[*ExitError](err)
	if !ok {
		printError(stderr, "", err, "")
		return Runtime
	}
	if ee.Err != nil {
		printError(stderr, ee.Cmd, ee.Err, ee.Hint)
	}
	return ee.Code
}

func printError(w io.Writer, cmd string, err error, hint string) {
	prefix := "reservist: "
	if cmd != "" {
		prefix = "reservist " + cmd + ": "
	}
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	for i, l := range lines {
		if i == len(lines)-1 && hint != "" {
			l += "; " + hint
		}
		fmt.Fprintln(w, prefix+l)
	}
}

// NewFlags makes a flag set for a command that never prints and never exits: Parse turns
// what goes wrong into one line, and help is the command's own (Command.Help).
func NewFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("reservist "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse parses flags that may come before, between or after positional arguments
// (reservist test cases/ --update) and returns the positional ones. -h or --help is
// flag.ErrHelp; anything else wrong is a usage error whose message names the flag and the
// problem in one line.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, Exit(Usage, flagProblem(fs, err))
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

// Given reports whether the flag was set on the command line (not from its default or the
// environment).
func Given(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// The flag package's messages, which flagProblem says again in the command line's terms.
// They have not changed since Go 1.0.
var (
	badValue = regexp.MustCompile(`^invalid value ("(?:[^"\\]|\\.)*") for flag -([^:]+): (.*)$`)
	badBool  = regexp.MustCompile(`^invalid boolean value ("(?:[^"\\]|\\.)*") for -([^:]+): (.*)$`)
)

// flagProblem says what is wrong with a command line in one line: the flag as it is written
// (--name), the value given, and what a right one looks like.
func flagProblem(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		s := "unknown flag " + dashed(name)
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if near := typo.Closest(strings.TrimLeft(name, "-"), names); near != "" {
			s += " (did you mean " + dashed(near) + "?)"
		}
		return errors.New(s)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		what := "a value"
		if f := fs.Lookup(name); f != nil {
			if n, _ := flag.UnquoteUsage(f); n != "" && n != "value" {
				what = "a " + n
			}
		}
		return fmt.Errorf("%s needs %s", dashed(name), what)
	}
	for _, re := range []*regexp.Regexp{badValue, badBool} {
		if m := re.FindStringSubmatch(msg); m != nil {
			value, _ := strconv.Unquote(m[1])
			return fmt.Errorf("%s %q: %s", dashed(m[2]), value, Why(fs.Lookup(m[2]), errors.New(m[3])))
		}
	}
	if s, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		return fmt.Errorf("bad flag syntax %s: a flag is --name or --name=value", s)
	}
	return err
}

// dashed writes a flag's name as help shows it: -v for one letter, --name for the rest.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// Why says what is wrong with a value a flag's Set refused, in words: the flag package says
// only "parse error" for its own types.
func Why(f *flag.Flag, err error) string {
	if f == nil {
		return err.Error()
	}
	switch reflect.TypeOf(f.Value).String() {
	case "*flag.durationValue":
		return "not a duration; give a number with a unit, like 30s, 2m or 1h30m"
	case "*flag.intValue", "*flag.int64Value", "*flag.uintValue", "*flag.uint64Value":
		if strings.Contains(err.Error(), "out of range") {
			return "out of range"
		}
		return "not a whole number"
	case "*flag.float64Value":
		return "not a number"
	case "*flag.boolValue":
		return "must be true or false"
	}
	return err.Error()
}

// isBool reports whether a flag takes no value (--strict, not --strict true).
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
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

// Choice is a flag that takes one of a few words (--format text|json); help shows them and
// shell completion offers them.
type Choice struct {
	Value   string
	Allowed []string
}

// NewChoice declares a Choice flag with its default.
func NewChoice(fs *flag.FlagSet, name, def string, allowed []string, usage string) *Choice {
	c := &Choice{Value: def, Allowed: allowed}
	fs.Var(c, name, usage)
	return c
}

func (c *Choice) String() string {
	if c == nil {
		return ""
	}
	return c.Value
}

// Set takes one of the allowed words.
func (c *Choice) Set(v string) error {
	if !slices.Contains(c.Allowed, v) {
		return fmt.Errorf("must be %s", orList(c.Allowed))
	}
	c.Value = v
	return nil
}

// orList writes words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
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
				errs = append(errs, fmt.Errorf("%s=%q: %s", name, v, Why(f, err)))
			}
		}
	})
	return errors.Join(errs...)
}
