package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/rules"
)

// newFlags makes a flag set for a subcommand whose errors go to stderr and never exit.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("reservist "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses flags that may come before, between or after positional arguments
// (reservist test cases/ --update) and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exit(exitOK, nil)
			}
			return nil, exit(exitUsage, nil)
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

// rulesFlag declares --rules; of the non-serve flags only it reads the environment.
func rulesFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	def := "rules.yaml"
	if v := getenv("RESERVIST_RULES"); v != "" {
		def = v
	}
	return fs.String("rules", def, "the rules `file` (env RESERVIST_RULES)")
}

// loadRules parses a rules file, printing every error as FILE:LINE:COL: message.
func loadRules(path string, stderr io.Writer) (*rules.Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, exit(exitFailed, fmt.Errorf("cannot read rules: %v", err))
	}
	set, err := rules.Parse(path, data)
	if err != nil {
		var re rules.Errors
		if errors.As(err, &re) {
			for _, d := range re {
				fmt.Fprintln(stderr, d)
			}
			return nil, exit(exitFailed, nil)
		}
		return nil, exit(exitFailed, err)
	}
	return set, nil
}

// haveCredentials reports whether Twilio REST credentials are configured.
func haveCredentials(getenv func(string) string) bool {
	return getenv("TWILIO_ACCOUNT_SID") != "" &&
		(getenv("TWILIO_AUTH_TOKEN") != "" || (getenv("TWILIO_API_KEY") != "" && getenv("TWILIO_API_SECRET") != ""))
}

// check validates and lints a rules file.
func check(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	path := rulesFlag(fs, getenv)
	strict := fs.Bool("strict", false, "treat lint warnings as errors")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "reservist check: unexpected argument %q; give the file with --rules\n", pos[0])
		return exit(exitUsage, nil)
	}
	set, err := loadRules(*path, stderr)
	if err != nil {
		return err
	}
	warnings := set.Lint(haveCredentials(getenv))
	for _, d := range warnings {
		if *strict {
			d.Warning = false
		}
		fmt.Fprintln(stderr, d)
	}
	if *strict && len(warnings) > 0 {
		return exit(exitFailed, nil)
	}
	fmt.Fprintf(stdout, "%s: ok: %d rules, revision %s", *path, len(set.Rules), set.Revision[:12])
	if len(warnings) > 0 {
		fmt.Fprintf(stdout, ", %d warnings", len(warnings))
	}
	fmt.Fprintln(stdout)
	return nil
}

// test runs golden-file cases against a rules file.
func test(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("test", stderr)
	path := rulesFlag(fs, getenv)
	update := fs.Bool("update", false, "rewrite the golden files with the decisions the rules make now")
	run := fs.String("run", "", "run only the cases whose name matches `regexp`")
	dirs, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var filter *regexp.Regexp
	if *run != "" {
		if filter, err = regexp.Compile(*run); err != nil {
			fmt.Fprintf(stderr, "reservist test: --run: %v\n", err)
			return exit(exitUsage, nil)
		}
	}
	if len(dirs) == 0 {
		dirs = []string{filepath.Join(filepath.Dir(*path), "cases")}
	}
	set, err := loadRules(*path, stderr)
	if err != nil {
		return err
	}
	cs, err := cases.Load(dirs...)
	if err != nil {
		return exit(exitFailed, err)
	}
	if len(cs) == 0 {
		fmt.Fprintf(stderr, "reservist test: no cases (*.yaml or *.form) under %s\n", strings.Join(dirs, ", "))
		return exit(exitFailed, nil)
	}
	rep := cases.Run(engine.New(set), cs, filter)
	if *update {
		written, err := rep.Update()
		for _, f := range written {
			fmt.Fprintf(stdout, "wrote %s\n", f)
		}
		if err != nil {
			return exit(exitFailed, err)
		}
		fmt.Fprintf(stdout, "%d golden files written, %d unchanged\n", len(written), rep.Passed)
		return nil
	}
	rep.Print(stdout)
	if rep.Failed > 0 {
		return exit(exitFailed, nil)
	}
	return nil
}

// explain shows how one callback is decided, rule by rule.
func explain(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", stderr)
	path := rulesFlag(fs, getenv)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: reservist explain [--rules FILE] CASE")
		return exit(exitUsage, nil)
	}
	set, err := loadRules(*path, stderr)
	if err != nil {
		return err
	}
	c, err := cases.LoadFile(pos[0])
	if err != nil {
		return exit(exitFailed, err)
	}
	d := engine.New(set).Explain(c.Params)
	writeExplanation(stdout, set, c, d)
	return nil
}

func writeExplanation(w io.Writer, set *rules.Set, c *cases.Case, d *engine.Decision) {
	fmt.Fprintf(w, "case:  %s\nrules: %s (revision %s)\n\n", c.Path, set.Path, set.Revision[:12])
	if d.Err != nil && len(d.Trace) == 0 {
		fmt.Fprintf(w, "the callback cannot be decided: %v\n\n", d.Err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, s := range d.Trace {
		result := s.Result
		if s.Error != "" {
			result += ": " + s.Error
		}
		fmt.Fprintf(tw, "  %d.\t%s\t%s\n", i+1, s.Rule, result)
	}
	if len(d.Trace) < len(set.Rules) && d.Err == nil && d.Rule != "default" {
		n := len(set.Rules) - len(d.Trace)
		fmt.Fprintf(tw, "  \t(%d %s below not tried)\t\n", n, plural(n, "rule", "rules"))
	}
	tw.Flush()
	fmt.Fprintf(w, "\ndecision: %s → %s", d.Rule, d.Instruction())
	if d.REST() {
		fmt.Fprintf(w, " via rest, delay %s", d.Delay())
	}
	fmt.Fprintln(w)
	if d.Err != nil && len(d.Trace) > 0 {
		fmt.Fprintf(w, "because:  %v\n", d.Err)
	}
	fmt.Fprintf(w, "response: %s\n", d.Response())
	if d.REST() {
		fmt.Fprintf(w, "rest:     POST /v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations/{ReservationSid}\n")
		params := d.RESTParams()
		for _, k := range slices.Sorted(maps.Keys(params)) {
			for _, v := range params[k] {
				fmt.Fprintf(w, "          %s=%s\n", k, v)
			}
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
