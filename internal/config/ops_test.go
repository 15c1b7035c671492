package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/internal/cli"
)

func TestOperationsFlags(t *testing.T) {
	none := func(string) string { return "" }
	c, err := ParseServe(nil, none)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != slog.LevelInfo || c.MetricsListen != "" || c.ShutdownDelay != 0 {
		t.Errorf("defaults: log level %v, metrics listen %q, shutdown delay %v; want info, off, 0", c.LogLevel, c.MetricsListen, c.ShutdownDelay)
	}
	env := map[string]string{"RESERVIST_LOG_LEVEL": "warn", "RESERVIST_METRICS_LISTEN": ":9091", "RESERVIST_SHUTDOWN_DELAY": "10s"}
	c, err = ParseServe(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != slog.LevelWarn || c.MetricsListen != ":9091" || c.ShutdownDelay != 10*time.Second {
		t.Errorf("from the environment: log level %v, metrics listen %q, shutdown delay %v; want warn, :9091, 10s", c.LogLevel, c.MetricsListen, c.ShutdownDelay)
	}
	c, err = ParseServe([]string{"--log-level", "debug", "--metrics-listen", "off", "--shutdown-delay", "0s"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != slog.LevelDebug || c.MetricsListen != "" || c.ShutdownDelay != 0 {
		t.Errorf("flags over the environment: log level %v, metrics listen %q, shutdown delay %v; want debug, off, 0", c.LogLevel, c.MetricsListen, c.ShutdownDelay)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-level", "verbose"}, `--log-level "verbose": must be debug, info, warn or error`},
		{[]string{"--log-level", "INFO"}, `--log-level "INFO": must be debug, info, warn or error`},
		{[]string{"--metrics-listen", "9091"}, `--metrics-listen "9091": address 9091: missing port in address (or off)`},
		{[]string{"--shutdown-delay", "-1s"}, `--shutdown-delay -1s: must be 0 (off) or more`},
	} {
		_, err := ParseServe(tc.args, none)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseServe(%q) = %v; want %s", tc.args, err, tc.want)
		}
	}
}

// LogFormat gives the format asked for even when the rest of the configuration is wrong, and
// nothing when the format itself is.
func TestLogFormat(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		env    string
		want   string
		wantOK bool
	}{
		{nil, "", "json", true},
		{nil, "text", "text", true},
		{[]string{"--log-format", "json"}, "text", "json", true},
		{[]string{"--log-format", "text"}, "xml", "text", true},
		{nil, "xml", "", false},
	} {
		fs := cli.NewFlags("serve")
		finish := DeclareServe(fs)
		if _, err := cli.Parse(fs, append(tc.args, "--listen", "nowhere")); err != nil {
			t.Fatal(err)
		}
		getenv := func(k string) string {
			if k == "RESERVIST_LOG_FORMAT" {
				return tc.env
			}
			return ""
		}
		if _, err := finish(getenv); err == nil || !strings.Contains(err.Error(), "--listen") && tc.wantOK {
			t.Fatalf("finish(%q, RESERVIST_LOG_FORMAT=%q) = %v; want the --listen error", tc.args, tc.env, err)
		}
		if got, ok := LogFormat(fs, getenv); got != tc.want || ok != tc.wantOK {
			t.Errorf("LogFormat(%q, RESERVIST_LOG_FORMAT=%q) = %q, %v; want %q, %v", tc.args, tc.env, got, ok, tc.want, tc.wantOK)
		}
	}
}
