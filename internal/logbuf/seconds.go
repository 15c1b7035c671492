package logbuf

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Seconds wraps h so that no duration reaches the log as bare nanoseconds, which is what
// slog's JSON handler writes for a time.Duration: an attribute of kind Duration is written
// as seconds (a float) under its key with "_seconds" added, unless it ends so already. It is
// for loggers that code outside this module writes to too (River's); reservist's own lines
// name their units themselves.
func Seconds(h slog.Handler) slog.Handler { return seconds{h} }

type seconds struct{ slog.Handler }

func (s seconds) Handle(ctx context.Context, r slog.Record) error {
	has := false
	r.Attrs(func(a slog.Attr) bool {
		has = hasDuration(a)
		return !has
	})
	if !has {
		return s.Handler.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(inSeconds(a))
		return true
	})
	return s.Handler.Handle(ctx, out)
}

func (s seconds) WithAttrs(as []slog.Attr) slog.Handler {
	conv := make([]slog.Attr, len(as))
	for i, a := range as {
		conv[i] = inSeconds(a)
	}
	return seconds{s.Handler.WithAttrs(conv)}
}

func (s seconds) WithGroup(name string) slog.Handler { return seconds{s.Handler.WithGroup(name)} }

// hasDuration reports whether a, or an attribute of its group, is a duration.
func hasDuration(a slog.Attr) bool {
	switch v := a.Value.Resolve(); v.Kind() {
	case slog.KindDuration:
		return true
	case slog.KindGroup:
		for _, g := range v.Group() {
			if hasDuration(g) {
				return true
			}
		}
	case slog.KindAny:
		_, ok := v.Any().(time.Duration)
		return ok
	}
	return false
}

// inSeconds is a with every duration in it written as seconds.
func inSeconds(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	var d time.Duration
	switch v.Kind() {
	case slog.KindDuration:
		d = v.Duration()
	case slog.KindAny:
		dd, ok := v.Any().(time.Duration)
		if !ok {
			return a
		}
		d = dd
	case slog.KindGroup:
		g := v.Group()
		conv := make([]slog.Attr, len(g))
		for i, ga := range g {
			conv[i] = inSeconds(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(conv...)}
	default:
		return a
	}
	key := a.Key
	if !strings.HasSuffix(key, "_seconds") {
		key += "_seconds"
	}
	return slog.Float64(key, d.Seconds())
}
