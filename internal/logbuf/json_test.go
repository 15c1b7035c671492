package logbuf

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// sameAsSlog logs r through JSONHandler and through slog's JSON handler and wants the same
// bytes.
func sameAsSlog(t *testing.T, r slog.Record) {
	t.Helper()
	var got, want bytes.Buffer
	if err := NewJSONHandler(&got).Handle(context.Background(), r.Clone()); err != nil {
		t.Fatal(err)
	}
	if err := slog.NewJSONHandler(&want, nil).Handle(context.Background(), r.Clone()); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("JSONHandler wrote\n%s; slog.JSONHandler writes\n%s", got.String(), want.String())
	}

	var attrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	got.Reset()
	if err := NewJSONHandler(&got).HandleAttrs(context.Background(), r.Time, r.Level, r.Message, attrs); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("HandleAttrs wrote\n%s; slog.JSONHandler writes\n%s", got.String(), want.String())
	}
}

func TestJSONHandlerSameAsSlog(t *testing.T) {
	at := time.Date(2026, 11, 22, 4, 26, 10, 123456789, time.FixedZone("", 3600))
	strs := []string{"", "plain", `quote " and \ backslash`, "tab\tnewline\nreturn\r", "\x00\x01\x1f\x7f",
		"<html> & 'x'", "é ünïcödé 日本", "\u2028\u2029", "bad \xff\xfe utf-8", "\xe2\x80", "emoji 🙂"}
	levels := []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2, slog.LevelError + 7}
	for i, s := range strs {
		r := slog.NewRecord(at, levels[i%len(levels)], s, 0)
		r.AddAttrs(slog.String(s, s), slog.String("reservation_sid", "WR0123456789abcdef0123456789abcdef"),
			slog.Int64("latency_us", int64(i)*-12345), slog.Uint64("n", uint64(i)<<60), slog.Bool("duplicate", i%2 == 0),
			slog.Int("int", i), slog.String("", s))
		sameAsSlog(t, r)
	}
	sameAsSlog(t, slog.NewRecord(time.Time{}, slog.LevelInfo, "no time", 0))
	sameAsSlog(t, slog.NewRecord(time.Now(), slog.LevelInfo, "now, with a monotonic reading", 0))
	sameAsSlog(t, slog.NewRecord(at.UTC(), slog.LevelInfo, "utc", 0))

	// Kinds JSONHandler leaves to slog's handler.
	r := slog.NewRecord(at, slog.LevelWarn, "fallback", 0)
	r.AddAttrs(slog.String("a", "b"), slog.Any("list", []string{"x", "y"}), slog.Any("error", errors.New("boom")),
		slog.Float64("f", 1.5), slog.Duration("d", time.Second), slog.Time("t", at), slog.Group("g", slog.Int("x", 1)),
		slog.Any("nil", nil))
	sameAsSlog(t, r)
	sameAsSlog(t, slog.NewRecord(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "year 10000", 0))
}

func TestJSONHandlerWithAttrsAndGroup(t *testing.T) {
	var got, want bytes.Buffer
	r := slog.NewRecord(time.Date(2026, 11, 22, 4, 26, 10, 0, time.UTC), slog.LevelInfo, "m", 0)
	r.AddAttrs(slog.Int("a", 1))
	with := []slog.Attr{slog.String("k", "v")}
	NewJSONHandler(&got).WithAttrs(with).WithGroup("g").Handle(context.Background(), r)
	slog.NewJSONHandler(&want, nil).WithAttrs(with).WithGroup("g").Handle(context.Background(), r)
	if got.String() != want.String() {
		t.Errorf("With/WithGroup wrote\n%s; want\n%s", got.String(), want.String())
	}
	if NewJSONHandler(io.Discard).Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled(Debug) = true; want false, as slog's default")
	}
}

func FuzzJSONHandler(f *testing.F) {
	f.Add("callback", "rule", "chat-and-sms", int64(120), true)
	f.Add("a\u2028b", "k\x00", "\xff", int64(-1), false)
	f.Fuzz(func(t *testing.T, msg, key, val string, n int64, b bool) {
		r := slog.NewRecord(time.Unix(0, n).UTC(), slog.LevelInfo, msg, 0)
		r.AddAttrs(slog.String(key, val), slog.Int64(val, n), slog.Bool(key, b))
		sameAsSlog(t, r)
	})
}

// BenchmarkJSONHandler writes a decision log line through slog's JSON handler and through
// JSONHandler, into a batching Writer as serve does.
func BenchmarkJSONHandler(b *testing.B) {
	attrs := []slog.Attr{
		slog.String("reservation_sid", "WR0123456789abcdef0123456789abcdef"),
		slog.String("task_sid", "WT0123456789abcdef0123456789abcdef"),
		slog.String("worker_sid", "WK0123456789abcdef0123456789abcdef"),
		slog.String("rule", "voice"),
		slog.String("instruction", "dequeue"),
		slog.String("via", "response"),
		slog.Int64("latency_us", 87),
		slog.String("revision", "3f2a9c0d6e1b4a7f8c5d2e9b0a3f6c1d4e7b0a9f8c3d6e1b2a5f8c7d0e3b6a9f"),
		slog.String("outcome", "answered"),
	}
	for _, h := range []struct {
		name string
		new  func(io.Writer) slog.Handler
	}{
		{"slog", func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) }},
		{"logbuf", func(w io.Writer) slog.Handler { return NewJSONHandler(w) }},
	} {
		b.Run(h.name, func(b *testing.B) {
			logger := slog.New(h.new(New(io.Discard, 64<<10)))
			b.ReportAllocs()
			for b.Loop() {
				logger.LogAttrs(context.Background(), slog.LevelInfo, "callback", attrs...)
			}
		})
	}
}

func TestJSONHandlerAt(t *testing.T) {
	h := NewJSONHandlerAt(io.Discard, slog.LevelWarn)
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelWarn) {
		t.Error("NewJSONHandlerAt(warn): Enabled(info) or not Enabled(warn); want warn and above only")
	}
	// Handlers made by WithAttrs keep the level.
	if h.WithAttrs([]slog.Attr{slog.String("k", "v")}).Enabled(context.Background(), slog.LevelInfo) {
		t.Error("NewJSONHandlerAt(warn).WithAttrs: Enabled(info) = true; want false")
	}
}
