package logbuf

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

// Durations from loggers reservist does not write itself reach the log as seconds under a
// _seconds key, at any depth, and nothing else changes.
func TestSeconds(t *testing.T) {
	var got bytes.Buffer
	strip := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}
	logger := slog.New(Seconds(slog.NewJSONHandler(&got, &slog.HandlerOptions{ReplaceAttr: strip})))
	logger.With(slog.Duration("timeout", 1500*time.Millisecond)).Warn("m",
		slog.Duration("duration", 3673065*time.Nanosecond),
		slog.Any("wait", 2*time.Second),
		slog.Duration("took_seconds", time.Second),
		slog.Group("g", slog.Duration("age", time.Minute), slog.Int("n", 1)),
		slog.String("s", "x"))
	want := `{"level":"WARN","msg":"m","timeout_seconds":1.5,"duration_seconds":0.003673065,"wait_seconds":2,"took_seconds":1,"g":{"age_seconds":60,"n":1},"s":"x"}` + "\n"
	if got.String() != want {
		t.Errorf("Seconds wrote\n%s; want\n%s", got.String(), want)
	}

	got.Reset()
	logger.Info("plain", slog.Int("n", 2))
	if want := `{"level":"INFO","msg":"plain","n":2}` + "\n"; got.String() != want {
		t.Errorf("Seconds wrote\n%s; want it unchanged:\n%s", got.String(), want)
	}
}
