package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	env := map[string]string{
		"RESERVIST_RULES":                   "env.yaml",
		"RESERVIST_LISTEN":                  "127.0.0.1:7000",
		"RESERVIST_CALLBACK_PATH":           "/a, /b,",
		"RESERVIST_ADMIN_LISTEN":            "off",
		"RESERVIST_PUBLIC_URL":              "https://env.example.com/",
		"RESERVIST_STATE_DIR":               "/var/lib/reservist",
		"RESERVIST_RESERVATION_TIMEOUT":     "60s",
		"RESERVIST_RESPONSE_BUDGET":         "2s",
		"RESERVIST_REST_CONCURRENCY":        "3",
		"RESERVIST_TWILIO_BASE_URL":         "http://proxy.example.com",
		"RESERVIST_RELOAD_POLL":             "0",
		"RESERVIST_RELOAD_CASES":            "cases,more",
		"RESERVIST_INSECURE_SKIP_SIGNATURE": "true",
		"RESERVIST_LOG_FORMAT":              "text",
	}
	getenv := func(k string) string { return env[k] }
	c, err := ParseServe(nil, getenv)
	if err != nil {
		t.Fatalf("ParseServe(env only) = %v", err)
	}
	if c.Rules != "env.yaml" || c.Listen != "127.0.0.1:7000" || !slices.Equal(c.CallbackPaths, []string{"/a", "/b"}) ||
		c.AdminListen != "" || c.PublicURL.String() != "https://env.example.com" || c.StateDir != "/var/lib/reservist" ||
		c.ReservationTimeout != time.Minute || c.ResponseBudget != 2*time.Second || c.RESTConcurrency != 3 ||
		c.TwilioBaseURL != "http://proxy.example.com" || c.ReloadPoll != 0 || !slices.Equal(c.ReloadCases, []string{"cases", "more"}) ||
		!c.InsecureSkipSignature || c.LogFormat != "text" {
		t.Errorf("config from the environment = %+v", c)
	}

	c, err = ParseServe([]string{
		"--rules", "flag.yaml", "--callback-path", "/c", "--admin-listen", "127.0.0.1:9999",
		"--response-budget", "1s", "--insecure-skip-signature=false", "--log-format", "json",
	}, getenv)
	if err != nil {
		t.Fatalf("ParseServe(flags and env) = %v", err)
	}
	if c.Rules != "flag.yaml" || !slices.Equal(c.CallbackPaths, []string{"/c"}) || c.AdminListen != "127.0.0.1:9999" ||
		c.ResponseBudget != time.Second || c.InsecureSkipSignature || c.LogFormat != "json" || c.Listen != "127.0.0.1:7000" {
		t.Errorf("flags did not win over the environment: %+v", c)
	}

	c, err = ParseServe(nil, func(string) string { return "" })
	if err != nil {
		t.Fatalf("ParseServe(defaults) = %v", err)
	}
	if c.Rules != "rules.yaml" || c.Listen != "127.0.0.1:8080" || !slices.Equal(c.CallbackPaths, []string{"/assignment_callback"}) ||
		c.AdminListen != "127.0.0.1:9090" || c.PublicURL != nil || c.StateDir != ".reservist" || c.ReservationTimeout != 120*time.Second ||
		c.ResponseBudget != 3*time.Second || c.RESTConcurrency != 8 || c.TwilioBaseURL != "https://taskrouter.twilio.com" ||
		c.ReloadPoll != 30*time.Second || c.InsecureSkipSignature || c.LogFormat != "json" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestCapture(t *testing.T) {
	env := map[string]string{"RESERVIST_CAPTURE_DIR": "/tmp/env", "RESERVIST_CAPTURE_REDACT": "a, b,", "RESERVIST_CAPTURE_MAX": "5"}
	getenv := func(k string) string { return env[k] }
	c, err := ParseServe(nil, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.CaptureDir != "/tmp/env" || !slices.Equal(c.CaptureRedact, []string{"a", "b"}) || c.CaptureMax != 5 {
		t.Errorf("capture config from the environment: dir %q redact %q max %d", c.CaptureDir, c.CaptureRedact, c.CaptureMax)
	}
	c, err = ParseServe([]string{"--capture-dir", "d", "--capture-redact", "x,y", "--capture-redact", "z", "--capture-max", "7"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.CaptureDir != "d" || !slices.Equal(c.CaptureRedact, []string{"x", "y", "z"}) || c.CaptureMax != 7 {
		t.Errorf("capture config from flags: dir %q redact %q max %d", c.CaptureDir, c.CaptureRedact, c.CaptureMax)
	}
	c, err = ParseServe(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.CaptureDir != "" || c.CaptureRedact != nil || c.CaptureMax != 1000 {
		t.Errorf("capture defaults: dir %q redact %q max %d; want off, none, 1000", c.CaptureDir, c.CaptureRedact, c.CaptureMax)
	}
	for _, bad := range []string{"0", "-1"} {
		if _, err := ParseServe([]string{"--capture-max", bad}, func(string) string { return "" }); err == nil {
			t.Errorf("--capture-max %s accepted", bad)
		}
	}
}

func TestOutbox(t *testing.T) {
	none := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", OutboxBbolt},
		{nil, "postgres://reservist@db:5432/outbox", "postgres://reservist@db:5432/outbox"},
		{[]string{"--outbox", "bbolt"}, "postgres://reservist@db/outbox", OutboxBbolt},
		{[]string{"--outbox", "postgresql://db/outbox?sslmode=verify-full"}, "", "postgresql://db/outbox?sslmode=verify-full"},
	} {
		getenv := func(k string) string {
			if k == "RESERVIST_OUTBOX" {
				return tc.env
			}
			return ""
		}
		c, err := ParseServe(tc.args, getenv)
		if err != nil {
			t.Errorf("ParseServe(%q, RESERVIST_OUTBOX=%q) = %v", tc.args, tc.env, err)
			continue
		}
		if c.Outbox != tc.want {
			t.Errorf("ParseServe(%q, RESERVIST_OUTBOX=%q).Outbox = %q; want %q", tc.args, tc.env, c.Outbox, tc.want)
		}
	}
	for _, bad := range []string{"postgres://u:s3cret@db:bad/x", "mysql://u:s3cret@db/x", "bolt", "postgres://u:s3cret@db/x?sslmode=nope"} {
		_, err := ParseServe([]string{"--outbox", bad}, none)
		switch {
		case err == nil:
			t.Errorf("--outbox %s accepted", bad)
		case !strings.Contains(err.Error(), "--outbox"):
			t.Errorf("--outbox %s: %v does not name the flag", bad, err)
		case strings.Contains(err.Error(), "s3cret"):
			t.Errorf("--outbox %s: %v shows the password", bad, err)
		}
	}
}

func TestEventsPath(t *testing.T) {
	none := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", "/taskrouter/events"},
		{nil, "/events", "/events"},
		{[]string{"--events-path", "off"}, "/events", ""},
		{nil, "off", ""},
		{[]string{"--events-path", "/tr/ev"}, "/events", "/tr/ev"},
	} {
		getenv := func(k string) string {
			if k == "RESERVIST_EVENTS_PATH" {
				return tc.env
			}
			return ""
		}
		c, err := ParseServe(tc.args, getenv)
		if err != nil {
			t.Errorf("ParseServe(%q, RESERVIST_EVENTS_PATH=%q) = %v", tc.args, tc.env, err)
			continue
		}
		if c.EventsPath != tc.want {
			t.Errorf("ParseServe(%q, RESERVIST_EVENTS_PATH=%q).EventsPath = %q; want %q", tc.args, tc.env, c.EventsPath, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--events-path", "events"}, `--events-path "events": must start with /`},
		{[]string{"--events-path", "/ev?x=1"}, `--events-path "/ev?x=1": must be a plain path`},
		{[]string{"--events-path", "/healthz"}, `--events-path "/healthz": is one of reservist's own routes`},
		{[]string{"--events-path", "/assignment_callback"}, `--events-path "/assignment_callback" is also a --callback-path`},
		{[]string{"--callback-path", "/a", "--callback-path", "/b", "--events-path", "/b"}, `--events-path "/b" is also a --callback-path`},
	} {
		_, err := ParseServe(tc.args, none)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseServe(%q) = %v; want an error with %q", tc.args, err, tc.want)
		}
	}
}
