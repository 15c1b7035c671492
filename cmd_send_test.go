package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"

	"github.com/reservist/reservist/internal/cli"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/server"
)

// serveExample starts `reservist serve` with the example rules through serve_test.go's
// startServe and returns its callback listener's base URL.
func serveExample(t *testing.T, env map[string]string, flags ...string) string {
	t.Helper()
	// Nothing a test sends may reach the real Twilio.
	flags = append([]string{"--twilio-base-url", "http://127.0.0.1:1"}, flags...)
	return startServe(t, testkit.Read(t, "testdata/example/rules.yaml"), env, flags...).url
}

// runSend runs `reservist send` through run() and returns its output and exit code.
func runSend(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"send"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	code = cli.Code(err, &errOut) // prints err's message, as main does
	return out.String(), errOut.String(), code
}

// goldenResponse is the answer a case's golden file says the example rules give.
func goldenResponse(t *testing.T, casePath string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(strings.TrimSuffix(strings.TrimSuffix(casePath, ".yaml"), ".form") + ".golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct{ Response map[string]any }
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g.Response
}

// answer splits send's output into the status line and the answer.
func answer(t *testing.T, stdout string) (status string, body map[string]any) {
	t.Helper()
	status, rest, _ := strings.Cut(stdout, "\n")
	if err := json.Unmarshal([]byte(rest), &body); err != nil {
		t.Fatalf("send's answer %q is not JSON: %v", rest, err)
	}
	return status, body
}

func TestSendSigned(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	env := map[string]string{"TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef", "TWILIO_AUTH_TOKEN": token}
	callback := serveExample(t, env) + "/assignment_callback"

	for _, c := range []string{"testdata/example/cases/vip-voice.yaml", "testdata/example/cases/voice.form"} {
		t.Run(c, func(t *testing.T) {
			stdout, stderr, code := runSend(t, env, "--url", callback, c)
			if code != 0 {
				t.Fatalf("send %s exited %d; want 0\nstdout: %s\nstderr: %s", c, code, stdout, stderr)
			}
			status, body := answer(t, stdout)
			if status != "200 OK" {
				t.Errorf("send %s status = %q; want 200 OK", c, status)
			}
			if want := goldenResponse(t, c); !jsonEqual(body, want) {
				t.Errorf("send %s answer = %v; want %v", c, body, want)
			}
			if stderr != "" {
				t.Errorf("send %s printed %q on stderr; want nothing", c, stderr)
			}
		})
	}

	t.Run("wrong token", func(t *testing.T) {
		wrong := map[string]string{"TWILIO_AUTH_TOKEN": "not-the-token"}
		stdout, _, code := runSend(t, wrong, "--url", callback, "testdata/example/cases/vip-voice.yaml")
		if code != cli.Failed {
			t.Errorf("send with a wrong token exited %d; want %d", code, cli.Failed)
		}
		if !strings.HasPrefix(stdout, "403 Forbidden\n{") {
			t.Errorf("send with a wrong token printed %q; want 403 Forbidden and the JSON error", stdout)
		}
	})

	t.Run("no token", func(t *testing.T) {
		stdout, stderr, code := runSend(t, nil, "--url", callback, "testdata/example/cases/vip-voice.yaml")
		if code != cli.Failed || !strings.HasPrefix(stdout, "403 Forbidden\n") {
			t.Errorf("unsigned send to a signed server: exit %d, stdout %q; want exit 1 and 403", code, stdout)
		}
		if !strings.Contains(stderr, "TWILIO_AUTH_TOKEN is not set: sending unsigned") {
			t.Errorf("unsigned send stderr = %q; want it to say it sends unsigned", stderr)
		}
	})
}

// TestSendPublicURL signs for the URL a server behind a proxy checks against.
func TestSendPublicURL(t *testing.T) {
	const token = "secret"
	env := map[string]string{"TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef", "TWILIO_AUTH_TOKEN": token}
	callback := serveExample(t, env, "--public-url", "https://callbacks.example.com") + "/assignment_callback"
	c := "testdata/example/cases/sms.yaml"

	stdout, stderr, code := runSend(t, env, "--url", callback, "--public-url", "https://callbacks.example.com", c)
	if code != 0 {
		t.Fatalf("send --public-url exited %d; want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, body := answer(t, stdout); !jsonEqual(body, goldenResponse(t, c)) {
		t.Errorf("send --public-url answer = %v; want %v", body, goldenResponse(t, c))
	}
	if stdout, _, code := runSend(t, env, "--url", callback, c); code != cli.Failed || !strings.HasPrefix(stdout, "403 ") {
		t.Errorf("send signed for the listener's own URL to a --public-url server: exit %d, stdout %q; want exit 1 and 403", code, stdout)
	}
}

func TestSendUnreachable(t *testing.T) {
	_, stderr, code := runSend(t, nil, "--url", "http://127.0.0.1:1/assignment_callback", "testdata/example/cases/sms.yaml")
	if code != cli.Runtime || !strings.Contains(stderr, "cannot send the case") {
		t.Errorf("send to a closed port: exit %d, stderr %q; want exit %d and cannot send the case", code, stderr, cli.Runtime)
	}
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// TestSignature holds the signer send uses (server.Validator.Sign) to Twilio's published
// example and to twilio-go's validator, including repeated parameters and a URL with a query.
func TestSignature(t *testing.T) {
	docs := url.Values{
		"Digits":  {"1234"},
		"To":      {"+18005551212"},
		"From":    {"+14158675310"},
		"Caller":  {"+14158675310"},
		"CallSid": {"CA1234567890ABCDE"},
	}
	const docsURL = "https://example.com/myapp.php?foo=1&bar=2"
	if got, want := server.NewValidator("12345").Sign(docsURL, docs), "L/OH5YylLD5NRKLltdqwSvS0BnU="; got != want {
		t.Errorf("signature(12345, %q, docs) = %q; want %q (Twilio's webhook security page)", docsURL, got, want)
	}

	form, err := url.ParseQuery(strings.TrimSpace(testkit.Read(t, "testdata/example/cases/voice.form")))
	if err != nil {
		t.Fatal(err)
	}
	form.Add("TaskAge", "99") // repeated: the first value is signed
	form.Set("Empty", "")
	for _, u := range []string{
		"http://127.0.0.1:8080/assignment_callback",
		"https://callbacks.example.com/taskrouter/assignment_callback?tenant=a%20b",
	} {
		sig := server.NewValidator("tok").Sign(u, form)
		if !server.NewValidator("tok").Valid(u, form, sig) {
			t.Errorf("the server's validator refuses signature(tok, %q, form) = %q", u, sig)
		}
		rv := client.NewRequestValidator("tok")
		if !rv.ValidateBody(u, []byte(form.Encode()), sig) {
			t.Errorf("twilio-go's validator refuses signature(tok, %q, form) = %q", u, sig)
		}
		if server.NewValidator("other").Valid(u, form, sig) {
			t.Errorf("a validator with another token accepts signature(tok, %q, form)", u)
		}
	}
}

func TestSendUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, cli.Usage, "give one case file"},
		{[]string{"a.yaml", "b.yaml"}, cli.Usage, "give one case file"},
		{[]string{"--url", "ftp://example.com/x", "a.yaml"}, cli.Usage, `--url "ftp://example.com/x": must be an absolute http(s) URL`},
		{[]string{"--url", "/assignment_callback", "a.yaml"}, cli.Usage, "must be an absolute http(s) URL"},
		{[]string{"--public-url", "https://example.com/path", "a.yaml"}, cli.Usage, "give only scheme://host[:port]"},
		{[]string{"testdata/example/cases/nope.yaml"}, cli.Failed, "no such file"},
		{[]string{"testdata/example/cases/sms.golden.json"}, cli.Failed, "sms.golden.json:1:1: a case file ends in .yaml (parameters as a mapping) or .form"},
		{[]string{"--bogus", "a.yaml"}, cli.Usage, "reservist send: unknown flag --bogus; run 'reservist send -h'"},
	}
	for _, tt := range tests {
		_, stderr, code := runSend(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("send %q: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
	if _, _, code := runSend(t, nil, "-h"); code != 0 {
		t.Errorf("send -h exited %d; want 0", code)
	}
}
