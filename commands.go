package main

import (
	"context"
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
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/internal/cli"
	"github.com/reservist/reservist/internal/config"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/rules/schema"
	"github.com/reservist/reservist/server"
)

// The commands other than serve: each reads its flags here and hands the work to the
// package that owns it.

// loadRules parses a rules file, printing every error as FILE:LINE:COL: message. It reads
// the file as serve does (reload.ReadFile): a regular file within the size limit, or an
// error naming the file.
func loadRules(path string, stderr io.Writer) (*rules.Set, error) {
	data, err := reload.ReadFile(path)
	if err != nil {
		return nil, cli.Exit(cli.Failed, fmt.Errorf("cannot read rules: %v", err))
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

// check validates and lints a rules file. Its answer depends on the file and the flags only,
// never on the environment (credentials are serve's start-up warning).
func check(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("check", stderr)
	path := cli.RulesFlag(fs, getenv)
	strict := fs.Bool("strict", false, "treat lint warnings as errors")
	timeout := fs.Duration("reservation-timeout", config.DefaultReservationTimeout, "the Workflow's TaskReservationTimeout, as serve takes it: a delay at or beyond it is a warning")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "reservist check: unexpected argument %q; give the file with --rules\n", pos[0])
		return cli.Exit(cli.Usage, nil)
	}
	if err := config.CheckReservationTimeout(*timeout); err != nil {
		return cli.Exit(cli.Usage, err)
	}
	set, err := loadRules(*path, stderr)
	if err != nil {
		return err
	}
	warnings := set.Lint(*timeout)
	for _, d := range warnings {
		if *strict {
			d.Warning = false
		}
		fmt.Fprintln(stderr, d)
	}
	if *strict && len(warnings) > 0 {
		return cli.Exit(cli.Failed, nil)
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
	fs := cli.NewFlags("test", stderr)
	path := cli.RulesFlag(fs, getenv)
	update := fs.Bool("update", false, "rewrite the golden files with the decisions the rules make now")
	run := fs.String("run", "", "run only the cases whose name matches `regexp`")
	dirs, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	var filter *regexp.Regexp
	if *run != "" {
		if filter, err = regexp.Compile(*run); err != nil {
			fmt.Fprintf(stderr, "reservist test: --run: %v\n", err)
			return cli.Exit(cli.Usage, nil)
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
		return cli.Exit(cli.Failed, err)
	}
	if len(cs) == 0 {
		fmt.Fprintf(stderr, "reservist test: no cases (*.yaml or *.form) under %s\n", strings.Join(dirs, ", "))
		return cli.Exit(cli.Failed, nil)
	}
	rep := cases.Run(engine.New(set), cs, filter)
	if *update {
		written, err := rep.Update()
		for _, f := range written {
			fmt.Fprintf(stdout, "wrote %s\n", f)
		}
		if err != nil {
			return cli.Exit(cli.Failed, err)
		}
		fmt.Fprintf(stdout, "%d golden files written, %d unchanged\n", len(written), rep.Passed)
		return nil
	}
	rep.Print(stdout)
	if rep.Failed > 0 {
		return cli.Exit(cli.Failed, nil)
	}
	return nil
}

// explain shows how one callback is decided, rule by rule: at its own Timestamp, or at --at.
func explain(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("explain", stderr)
	path := cli.RulesFlag(fs, getenv)
	at := fs.String("at", "", "decide the case at `TIME` (RFC 3339, like 2026-03-09T09:15:00-04:00, or Unix epoch seconds) in place of its Timestamp")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: reservist explain [--rules FILE] [--at TIME] CASE")
		return cli.Exit(cli.Usage, nil)
	}
	if *at != "" {
		if _, err := engine.ParseTime(*at); err != nil {
			fmt.Fprintf(stderr, "reservist explain: --at: %v\n", err)
			return cli.Exit(cli.Usage, nil)
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
	if *at != "" {
		c.Params.Set(engine.ParamTimestamp, *at)
	}
	if err := cases.Pinned(set, c); err != nil {
		return cli.Exit(cli.Failed, fmt.Errorf("%s: %v; or give --at TIME", c.Path, err))
	}
	cases.WriteExplanation(stdout, set, c, engine.New(set).Explain(c.Params, time.Time{}))
	return nil
}

// schemaCmd prints the JSON Schema of rules.yaml, for editors (yaml-language-server's
// `# yaml-language-server: $schema=…` comment) and CI linters.
func schemaCmd(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("schema", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: reservist schema > rules.schema.json")
		fmt.Fprintln(stderr, "Prints the JSON Schema (draft 2020-12) of rules.yaml.")
	}
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "reservist schema: unexpected argument %q; it takes none\n", pos[0])
		return cli.Exit(cli.Usage, nil)
	}
	out, err := schema.JSON()
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// defaultSendURL is where `serve` listens with its default --listen and --callback-path.
const defaultSendURL = "http://127.0.0.1:8080/assignment_callback"

// sendTimeout bounds one send; TaskRouter itself gives up after 5 seconds.
const sendTimeout = 10 * time.Second

// maxAnswer caps how much of an answer is printed: a callback answer is a small JSON object.
const maxAnswer = 1 << 20

// send posts a case file to a running server the way TaskRouter does — a form POST signed
// with TWILIO_AUTH_TOKEN — so that a secured server can be exercised without TaskRouter. It
// prints the status and the answer; a non-2xx answer exits 1.
func send(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("send", stderr)
	target := fs.String("url", defaultSendURL, "callback `URL` to post the case to")
	public := fs.String("public-url", "", "scheme://host[:port] the server checks signatures against: its --public-url, when it runs behind a proxy (default: the one in --url)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: reservist send [--url URL] [--public-url URL] CASE")
		fmt.Fprintln(stderr, "Posts a case (NAME.yaml or NAME.form) to a running server, signed with TWILIO_AUTH_TOKEN.")
		fs.PrintDefaults()
	}
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "reservist send: give one case file, like cases/vip-voice.yaml")
		return cli.Exit(cli.Usage, nil)
	}
	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cli.Exit(cli.Usage, fmt.Errorf("--url %q: must be an absolute http(s) URL, like %s", *target, defaultSendURL))
	}
	// The server checks the signature against its --public-url (or the request's own scheme
	// and host) followed by the request URI as it arrives; sign exactly that.
	base := u.Scheme + "://" + u.Host
	if *public != "" {
		p, err := config.ParsePublicURL(*public)
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
