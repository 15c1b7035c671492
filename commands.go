package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/engine/outbox/postgres"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/internal/cli"
	"github.com/reservist/reservist/internal/config"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/rules/schema"
	"github.com/reservist/reservist/server"
)

// The commands other than serve: each declares its flags here and hands the work to the
// package that owns it.

// readRules reads a rules file as serve does (reload.ReadFile): a regular file within the
// size limit, or an error naming the file.
func readRules(path string) ([]byte, error) {
	data, err := reload.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read rules: %v", err)
	}
	return data, nil
}

// loadRules parses a rules file, printing every error as FILE:LINE:COL: message.
func loadRules(path string, stderr io.Writer) (*rules.Set, error) {
	data, err := readRules(path)
	if err != nil {
		return nil, cli.Exit(cli.Failed, err)
	}
	set, err := rules.Parse(path, data)
	if err != nil {
		printLines(stderr, rules.ErrorLines(err))
		return nil, cli.Exit(cli.Failed, nil)
	}
	return set, nil
}

func printLines(w io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// printWarnings prints case warnings, FILE:LINE:COL: warning: message, one a line.
func printWarnings(w io.Writer, ds []rules.Diagnostic) {
	for _, d := range ds {
		fmt.Fprintln(w, d)
	}
}

func checkCommand(getenv func(string) string, stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:     "check",
		Synopsis: "[--rules FILE] [--strict] [--format text|json] [FILE...]",
		Summary:  "validate and lint rules files; exit 1 on any error",
		Doc: `Validates each rules file and lints it. Every error and warning is printed to stderr as FILE:LINE:COL: message, all of them at once; each valid file gets a line FILE: ok: N rules on stdout. The exit status is 1 when a file has an error, or, with --strict, a warning.

The files are the arguments, and --rules when it is given; with neither, rules.yaml (or RESERVIST_RULES). The answer depends on the files and the flags only, never on the environment: whether Twilio credentials are set is serve's start-up warning.

--format json prints the diagnostics of every file as one JSON array on stdout instead, each {"file", "line", "col", "severity", "message"} with severity "error" or "warning" (under --strict, warnings are errors), for CI annotations. A file that cannot be read has line and col 0.`,
		Operands: cli.Operands{Files: true},
		Setup: func(fs *flag.FlagSet) cli.Runner {
			path := cli.RulesFlag(fs, getenv)
			strict := fs.Bool("strict", false, "treat lint warnings as errors")
			format := cli.NewChoice(fs, "format", "text", []string{"text", "json"}, "how to print the diagnostics: text (FILE:LINE:COL lines on stderr) or json (one array on stdout)")
			timeout := fs.Duration("reservation-timeout", config.DefaultReservationTimeout, "the Workflow's TaskReservationTimeout, as serve takes it: a delay at or beyond it is a warning")
			return func(ctx context.Context, files []string) error {
				if err := config.CheckReservationTimeout(*timeout); err != nil {
					return cli.Exit(cli.Usage, err)
				}
				if cli.Given(fs, "rules") || len(files) == 0 {
					files = append([]string{*path}, files...)
				}
				return check(files, checkOptions{strict: *strict, json: format.Value == "json", timeout: *timeout}, stdout, stderr)
			}
		},
	}
}

type checkOptions struct {
	strict, json bool
	timeout      time.Duration
}

// jsonDiagnostic is a diagnostic as check --format json prints it.
type jsonDiagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Severity string `json:"severity"` // "error" or "warning"
	Message  string `json:"message"`
}

// check validates and lints rules files. Its answer depends on the files and the flags
// only, never on the environment (credentials are serve's start-up warning).
func check(files []string, o checkOptions, stdout, stderr io.Writer) error {
	failed := false
	all := []jsonDiagnostic{}
	add := func(d rules.Diagnostic) {
		sev := "error"
		if d.Warning {
			sev = "warning"
		}
		all = append(all, jsonDiagnostic{File: d.File, Line: d.Pos.Line, Col: d.Pos.Col, Severity: sev, Message: d.Msg})
	}
	for _, path := range files {
		data, err := readRules(path)
		if err != nil {
			failed = true
			if o.json {
				all = append(all, jsonDiagnostic{File: path, Severity: "error", Message: err.Error()})
			} else {
				fmt.Fprintf(stderr, "reservist check: %v\n", err)
			}
			continue
		}
		set, err := rules.Parse(path, data)
		if err != nil {
			failed = true
			errs, ok := errors.AsType[rules.Errors](err)
			if !ok {
				errs = rules.Errors{{File: path, Pos: rules.Pos{Line: 1, Col: 1}, Msg: err.Error()}}
			}
			for _, d := range errs {
				if o.json {
					add(d)
				} else {
					fmt.Fprintln(stderr, d)
				}
			}
			continue
		}
		warnings := set.Lint(o.timeout)
		for _, d := range warnings {
			if o.strict {
				d.Warning = false
			}
			if o.json {
				add(d)
			} else {
				fmt.Fprintln(stderr, d)
			}
		}
		if o.strict && len(warnings) > 0 {
			failed = true
			continue
		}
		if !o.json {
			fmt.Fprintf(stdout, "%s: ok: %d rules, revision %s", path, len(set.Rules), set.Revision[:12])
			if len(warnings) > 0 {
				fmt.Fprintf(stdout, ", %d warnings", len(warnings))
			}
			fmt.Fprintln(stdout)
		}
	}
	if o.json {
		out, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", out)
	}
	if failed {
		return cli.Exit(cli.Failed, nil)
	}
	return nil
}

func testCommand(getenv func(string) string, stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:     "test",
		Synopsis: "[--rules FILE] [--update] [--run REGEX] [-v] [--strict] [DIR...]",
		Summary:  "run golden-file cases; --update rewrites the golden files",
		Doc: `Decides every case under each DIR (default: cases/ beside the rules file) — every *.yaml and *.form file — and compares the decision with its golden file, NAME.golden.json, by meaning. A failing case is shown as --- FAIL: NAME (PATH) with the two decisions' JSON as a line diff (- golden, + actual). The run ends with the rules no case reached (unreached: a, b; not with --run, which skips cases) and N passed, N failed, and exits 1 on any failure.

A case file that does not parse fails, located as FILE:LINE:COL, and the other cases still run. A key of a .yaml case that is no callback parameter (TaskAtributes) is a warning, FILE:LINE:COL: warning: …, on stderr; --strict makes warnings fail their cases.

--update writes the golden file of every case that does not pass, from what the rules decide now, and leaves passing ones alone; it writes none for a case with warnings unless --strict=false is given. Review what it wrote before committing it.`,
		Operands: cli.Operands{Dirs: true},
		Setup: func(fs *flag.FlagSet) cli.Runner {
			path := cli.RulesFlag(fs, getenv)
			update := fs.Bool("update", false, "rewrite the golden files with the decisions the rules make now")
			run := fs.String("run", "", "run only the cases whose name matches `regexp`")
			verbose := fs.Bool("v", false, "list every case with its result, not only the failing ones")
			strict := fs.Bool("strict", false, "fail cases that have warnings (an unknown callback parameter); --strict=false lets --update write their golden files")
			return func(ctx context.Context, dirs []string) error {
				var filter *regexp.Regexp
				if *run != "" {
					var err error
					if filter, err = regexp.Compile(*run); err != nil {
						return cli.Usagef("--run %q: not a regular expression: %v", *run, err)
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
					return cli.Exit(cli.Failed, fmt.Errorf("cannot read the cases: %v", err))
				}
				if len(cs) == 0 {
					return cli.Exit(cli.Failed, fmt.Errorf("no cases (*.yaml or *.form) under %s", strings.Join(dirs, ", ")))
				}
				rep := cases.RunWith(engine.New(set), cs, cases.Options{Filter: filter, Strict: *strict})
				if !*strict {
					printWarnings(stderr, rep.Warnings())
				}
				if *update {
					withWarnings := cli.Given(fs, "strict") && !*strict
					written, err := rep.Update(withWarnings)
					for _, f := range written {
						fmt.Fprintf(stdout, "wrote %s\n", f)
					}
					fmt.Fprintf(stdout, "%d golden files written, %d unchanged\n", len(written), rep.Passed)
					if err != nil {
						return cli.Exit(cli.Failed, err)
					}
					return nil
				}
				rep.Print(stdout, *verbose)
				if rep.Failed > 0 {
					return cli.Exit(cli.Failed, nil)
				}
				return nil
			}
		},
	}
}

func explainCommand(getenv func(string) string, stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:     "explain",
		Synopsis: "[--rules FILE] [--at TIME] CASE",
		Summary:  "show how one callback is decided, rule by rule",
		Doc:      `Decides one case (a .yaml or .form file) and shows every rule tried with its outcome, the decision, the answer TaskRouter gets and the REST call, if any. Under rules that read the time it also shows the callback's time and whether each schedule is open then; the case is decided at its own Timestamp, or at --at.`,
		Operands: cli.Operands{Files: true},
		Setup: func(fs *flag.FlagSet) cli.Runner {
			path := cli.RulesFlag(fs, getenv)
			at := fs.String("at", "", "decide the case at `TIME` (RFC 3339, like 2026-03-09T09:15:00-04:00, or Unix epoch seconds) in place of its Timestamp")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return cli.Usagef("give one case file, like cases/chat.yaml")
				}
				if *at != "" {
					if _, err := engine.ParseTime(*at); err != nil {
						return cli.Usagef("--at: %v", err)
					}
				}
				set, err := loadRules(*path, stderr)
				if err != nil {
					return err
				}
				c, err := cases.LoadFile(pos[0])
				if err != nil {
					return cli.Exit(cli.Failed, err)
				}
				printWarnings(stderr, c.Warnings)
				if *at != "" {
					c.Params.Set(engine.ParamTimestamp, *at)
				}
				if err := cases.Pinned(set, c); err != nil {
					return cli.Exit(cli.Failed, fmt.Errorf("%s: %v; or give --at TIME", c.Path, err))
				}
				cases.WriteExplanation(stdout, set, c, engine.New(set).Explain(c.Params, time.Time{}))
				return nil
			}
		},
	}
}

// schemaCommand prints the JSON Schema of rules.yaml, for editors (yaml-language-server's
// `# yaml-language-server: $schema=…` comment) and CI linters.
func schemaCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:    "schema",
		Summary: "print the JSON Schema of rules.yaml",
		Doc:     `Prints the JSON Schema (draft 2020-12) of rules.yaml, generated from the tables the validator reads: reservist schema > rules.schema.json, then name it on the rules file's first line, # yaml-language-server: $schema=rules.schema.json, for editors that use yaml-language-server. The admin listener serves the same schema at /schema.json.`,
		Setup: func(fs *flag.FlagSet) cli.Runner {
			return func(ctx context.Context, pos []string) error {
				if len(pos) > 0 {
					return cli.Usagef("unexpected argument %q: schema takes none", pos[0])
				}
				out, err := schema.JSON()
				if err != nil {
					return err
				}
				_, err = stdout.Write(out)
				return err
			}
		},
	}
}

// defaultSendURL is where `serve` listens with its default --listen and --callback-path.
const defaultSendURL = "http://127.0.0.1:8080/assignment_callback"

// sendTimeout bounds one send; TaskRouter itself gives up after 5 seconds.
const sendTimeout = 10 * time.Second

// maxAnswer caps how much of an answer is printed: a callback answer is a small JSON object.
const maxAnswer = 1 << 20

func sendCommand(getenv func(string) string, stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:     "send",
		Synopsis: "[--url URL] [--public-url URL] CASE",
		Summary:  "post a case file to a running server, signed",
		Doc:      `Posts a case (NAME.yaml or NAME.form) to a running server the way TaskRouter does, a form POST signed with TWILIO_AUTH_TOKEN, and prints the status and the answer. Without TWILIO_AUTH_TOKEN the case is sent unsigned, which only a server without a token accepts. A non-2xx answer exits 1.`,
		Operands: cli.Operands{Files: true},
		Setup: func(fs *flag.FlagSet) cli.Runner {
			target := fs.String("url", defaultSendURL, "callback `URL` to post the case to")
			public := fs.String("public-url", "", "scheme://host[:port] the server checks signatures against: its --public-url, when it runs behind a proxy (default: the one in --url)")
			return func(ctx context.Context, pos []string) error {
				return send(ctx, *target, *public, pos, getenv, stdout, stderr)
			}
		},
	}
}

// send posts a case file to a running server the way TaskRouter does — a form POST signed
// with TWILIO_AUTH_TOKEN — so that a secured server can be exercised without TaskRouter. It
// prints the status and the answer; a non-2xx answer exits 1.
func send(ctx context.Context, target, public string, pos []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(pos) != 1 {
		return cli.Usagef("give one case file, like cases/vip-voice.yaml")
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cli.Usagef("--url %q: must be an absolute http(s) URL, like %s", target, defaultSendURL)
	}
	// The server checks the signature against its --public-url (or the request's own scheme
	// and host) followed by the request URI as it arrives; sign exactly that.
	base := u.Scheme + "://" + u.Host
	if public != "" {
		p, err := config.ParsePublicURL(public)
		if err != nil {
			return cli.Exit(cli.Usage, err)
		}
		base = p.Scheme + "://" + p.Host
	}
	signedURL := base + u.RequestURI()

	c, err := cases.LoadFile(pos[0])
	if err != nil {
		return cli.Exit(cli.Failed, err)
	}
	printWarnings(stderr, c.Warnings)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(c.Params.Encode()))
	if err != nil {
		return cli.Exit(cli.Usage, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token := getenv(taskrouter.EnvAuthToken); token != "" {
		req.Header.Set(server.SignatureHeader, server.NewValidator(token).Sign(signedURL, c.Params))
	} else {
		fmt.Fprintln(stderr, "reservist send: TWILIO_AUTH_TOKEN is not set: sending unsigned, which only a server without a token accepts")
	}

	resp, err := (&http.Client{Timeout: sendTimeout}).Do(req)
	if err != nil {
		return cli.Exit(cli.Runtime, fmt.Errorf("cannot send the case: %v", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return cli.Exit(cli.Runtime, fmt.Errorf("reading the answer: %v", err))
	}
	fmt.Fprintln(stdout, resp.Status)
	stdout.Write(body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return cli.Exit(cli.Failed, nil)
	}
	return nil
}

// migrateTimeout bounds `reservist migrate` by default: connecting, waiting for the lock a
// starting replica may hold, and River's migrations.
const migrateTimeout = 2 * time.Minute

func migrateCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:     "migrate",
		Synopsis: "--outbox URL [--timeout DURATION]",
		Summary:  "create or upgrade the shared PostgreSQL outbox's schema",
		Doc: `Creates or upgrades the shared PostgreSQL outbox's schema (River's tables) in the database the URL names, as a user that may change the schema, and exits: 0 when the schema is current, 3 when the database cannot be reached or refuses. reservist serve does the same at start under the same lock; run this when its own database user may not.

libpq's PG* variables (PGPASSWORD, PGSSLMODE, ...) fill in what the URL leaves out. Only --outbox names the database: like every command but serve, migrate reads no RESERVIST_* variable, so pass --outbox "$RESERVIST_OUTBOX".`,
		Setup: func(fs *flag.FlagSet) cli.Runner {
			target := fs.String("outbox", "", "the shared outbox's PostgreSQL `URL`, postgres://USER@HOST:PORT/DATABASE, as serve's --outbox")
			timeout := fs.Duration("timeout", migrateTimeout, "give up after this `duration`")
			return func(ctx context.Context, pos []string) error {
				return migrate(ctx, *target, *timeout, pos, stdout)
			}
		},
	}
}

// migrate creates or upgrades the shared PostgreSQL outbox's schema ahead of a rollout, for
// teams whose runtime database user may not change the schema; serve does the same at start
// under the same lock. It exits 0 when the schema is current, 2 for a usage error and 3 when
// the database cannot be reached or refuses.
func migrate(ctx context.Context, target string, timeout time.Duration, pos []string, stdout io.Writer) error {
	switch {
	case len(pos) > 0:
		return cli.Usagef("unexpected argument %q: migrate takes none; give the database with --outbox", pos[0])
	case target == "":
		return cli.Usagef("--outbox is needed: the shared outbox's database, postgres://USER@HOST:PORT/DATABASE")
	case target == config.OutboxBbolt:
		return cli.Usagef("--outbox bbolt needs no migration: the embedded outbox creates its file at start; migrate is for a postgres:// URL")
	case !postgres.IsURL(target):
		return cli.Usagef("--outbox %q: must be a PostgreSQL URL postgres://USER@HOST:PORT/DATABASE", postgres.Redacted(target))
	case timeout <= 0:
		return cli.Usagef("--timeout %v: must be more than 0", timeout)
	}
	if _, err := postgres.ParseURL(target); err != nil {
		return cli.Usagef("--outbox: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	schema, err := postgres.Migrate(ctx, target)
	if err != nil {
		return cli.Exit(cli.Runtime, fmt.Errorf("--outbox %s: %w", postgres.Redacted(target), err))
	}
	if len(schema.Applied) == 0 {
		fmt.Fprintf(stdout, "%s: the outbox schema is current (version %d)\n", postgres.Redacted(target), schema.Version)
		return nil
	}
	fmt.Fprintf(stdout, "%s: the outbox schema is at version %d (applied %v)\n", postgres.Redacted(target), schema.Version, schema.Applied)
	return nil
}
