package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/server"
)

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
	fs := newFlags("send", stderr)
	target := fs.String("url", defaultSendURL, "callback `URL` to post the case to")
	public := fs.String("public-url", "", "scheme://host[:port] the server checks signatures against: its --public-url, when it runs behind a proxy (default: the one in --url)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: reservist send [--url URL] [--public-url URL] CASE")
		fmt.Fprintln(stderr, "Posts a case (NAME.yaml or NAME.form) to a running server, signed with TWILIO_AUTH_TOKEN.")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "reservist send: give one case file, like cases/vip-voice.yaml")
		return exit(exitUsage, nil)
	}
	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return exit(exitUsage, fmt.Errorf("--url %q: must be an absolute http(s) URL, like %s", *target, defaultSendURL))
	}
	// The server checks the signature against its --public-url (or the request's own scheme
	// and host) followed by the request URI as it arrives; sign exactly that.
	base := u.Scheme + "://" + u.Host
	if *public != "" {
		p, err := parsePublicURL(*public)
		if err != nil {
			return exit(exitUsage, err)
		}
		base = p.Scheme + "://" + p.Host
	}
	signedURL := base + u.RequestURI()

	c, err := cases.LoadFile(pos[0])
	if err != nil {
		return exit(exitFailed, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(c.Params.Encode()))
	if err != nil {
		return exit(exitUsage, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token := getenv("TWILIO_AUTH_TOKEN"); token != "" {
		req.Header.Set(server.SignatureHeader, server.NewValidator(token).Sign(signedURL, c.Params))
	} else {
		fmt.Fprintln(stderr, "reservist send: TWILIO_AUTH_TOKEN is not set: sending unsigned, which only a server without a token accepts")
	}

	resp, err := (&http.Client{Timeout: sendTimeout}).Do(req)
	if err != nil {
		return exit(exitRuntime, fmt.Errorf("cannot send the case: %v", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return exit(exitRuntime, fmt.Errorf("reading the answer: %v", err))
	}
	fmt.Fprintln(stdout, resp.Status)
	stdout.Write(body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return exit(exitFailed, nil)
	}
	return nil
}
