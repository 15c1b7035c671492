package cli

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"
)

// A usage error names the flag as it is written and says what a right value is, in one
// line; the flag package's own words ("parse error") never reach the user.
func TestFlagProblems(t *testing.T) {
	newSet := func() *flag.FlagSet {
		fs := NewFlags("t")
		fs.Duration("reload-poll", 30*time.Second, "")
		fs.Int("capture-max", 1000, "")
		fs.Bool("strict", false, "")
		fs.String("rules", "rules.yaml", "the rules `file`")
		fs.Bool("v", false, "")
		NewChoice(fs, "format", "text", []string{"text", "json"}, "")
		return fs
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--reload-poll", "5"}, `--reload-poll "5": not a duration; give a number with a unit, like 30s, 2m or 1h30m`},
		{[]string{"-reload-poll=soon"}, `--reload-poll "soon": not a duration; give a number with a unit, like 30s, 2m or 1h30m`},
		{[]string{"--capture-max", "many"}, `--capture-max "many": not a whole number`},
		{[]string{"--capture-max", "99999999999999999999"}, `--capture-max "99999999999999999999": out of range`},
		{[]string{"--strict=maybe"}, `--strict "maybe": must be true or false`},
		{[]string{"--format", "xml"}, `--format "xml": must be text or json`},
		{[]string{"--rules"}, `--rules needs a file`},
		{[]string{"--bogus"}, `unknown flag --bogus`},
		{[]string{"--strikt"}, `unknown flag --strikt (did you mean --strict?)`},
		{[]string{"-x"}, `unknown flag -x`},
		{[]string{"---rules", "x"}, `bad flag syntax ---rules: a flag is --name or --name=value`},
	} {
		_, err := Parse(newSet(), tt.args)
		ee, ok := err.(*ExitError)
		if !ok || ee.Code != Usage || ee.Err == nil || ee.Err.Error() != tt.want {
			t.Errorf("Parse(%q) = %v; want a usage error %q", tt.args, err, tt.want)
		}
	}
	if _, err := Parse(newSet(), []string{"-h"}); err != flag.ErrHelp {
		t.Errorf("Parse(-h) = %v; want flag.ErrHelp", err)
	}
	pos, err := Parse(newSet(), []string{"a", "--strict", "b", "--", "--c"})
	if err != nil || strings.Join(pos, " ") != "a b --c" {
		t.Errorf("Parse(a --strict b -- --c) = %q, %v; want a b --c", pos, err)
	}
}

// The environment fills only what the command line did not give, and says which variable
// is at fault.
func TestFromEnv(t *testing.T) {
	fs := NewFlags("t")
	poll := fs.Duration("reload-poll", 30*time.Second, "")
	list := &List{Values: []string{"/a"}}
	fs.Var(list, "callback-path", "")
	format := NewChoice(fs, "log-format", "json", []string{"json", "text"}, "")
	if _, err := Parse(fs, []string{"--log-format", "text"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"RESERVIST_RELOAD_POLL": "5", "RESERVIST_CALLBACK_PATH": "/b, /c", "RESERVIST_LOG_FORMAT": "xml"}
	err := FromEnv(fs, func(k string) string { return env[k] })
	if err == nil || err.Error() != `RESERVIST_RELOAD_POLL="5": not a duration; give a number with a unit, like 30s, 2m or 1h30m` {
		t.Errorf("FromEnv = %v; want RESERVIST_RELOAD_POLL named, and RESERVIST_LOG_FORMAT unread (the flag was given)", err)
	}
	if strings.Join(list.Values, ",") != "/b,/c" || format.Value != "text" {
		t.Errorf("after FromEnv: callback-path %q, log-format %q; want the variable's list, the flag's format", list.Values, format.Value)
	}
	env = map[string]string{"RESERVIST_RELOAD_POLL": "5s"}
	if err := FromEnv(fs, func(k string) string { return env[k] }); err != nil || *poll != 5*time.Second {
		t.Errorf("FromEnv(RESERVIST_RELOAD_POLL=5s) = %v, reload-poll %v", err, *poll)
	}
}

// Help is the usage line, the doc and the flags, each with its default and variable; a
// program's list names every command; -h and help COMMAND print the same, to stdout.
func TestHelp(t *testing.T) {
	p := &Program{
		Doc:     "tool does things.",
		Default: "run",
		Version: func() string { return "v1" },
		Commands: []*Command{{
			Name: "run", Synopsis: "[--listen ADDR]", Summary: "run it", Doc: "Runs it, for a long time, with a doc long enough to wrap at the width help wraps at, which is a little more than eighty columns.",
			Setup: func(fs *flag.FlagSet) Runner {
				fs.String("listen", "127.0.0.1:8080", "listener `address` (env RESERVIST_LISTEN)")
				return func(context.Context, []string) error { return nil }
			},
		}},
	}
	var a, b, list bytes.Buffer
	if err := p.Run(context.Background(), []string{"run", "-h"}, &a); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), []string{"help", "run"}, &b); err != nil {
		t.Fatal(err)
	}
	want := `Usage: reservist run [--listen ADDR]

Runs it, for a long time, with a doc long enough to wrap at the width help wraps at, which is a
little more than eighty columns.

Flags:
  --listen address
        listener address (env RESERVIST_LISTEN) (default "127.0.0.1:8080")
  -h, --help
        print this help
`
	if a.String() != want || b.String() != want {
		t.Errorf("run -h =\n%s\nhelp run =\n%s\nwant\n%s", a.String(), b.String(), want)
	}
	if err := p.Run(context.Background(), []string{"--help"}, &list); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"  reservist run     [--listen ADDR]", "  reservist completion bash|zsh|fish", "  reservist version", "  reservist help    [COMMAND]"} {
		if !strings.Contains(list.String(), line) {
			t.Errorf("the command list lacks %q:\n%s", line, list.String())
		}
	}
	var v bytes.Buffer
	if err := p.Run(context.Background(), []string{"--version"}, &v); err != nil || v.String() != "reservist v1\n" {
		t.Errorf("--version = %q, %v", v.String(), err)
	}
	err := p.Run(context.Background(), []string{"runn"}, &v)
	var out bytes.Buffer
	if code := Code(err, &out); code != Usage || out.String() != "reservist: unknown command \"runn\" (did you mean run?); run 'reservist help' for the list\n" {
		t.Errorf("runn = exit %d, %q", code, out.String())
	}
}
