package logbuf

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/reservist/reservist/engine/jsonstr"
)

// JSONHandler writes the same lines as slog.NewJSONHandler(w, nil), byte for byte, at a
// fraction of the cost for records whose attributes are strings, integers and booleans —
// every decision log line. It appends the line in one buffer and writes it with one Write;
// records with other kinds of values, and handlers made by WithAttrs or WithGroup, go
// through a slog.JSONHandler on the same writer.
type JSONHandler struct {
	w        io.Writer
	fallback slog.Handler
}

// NewJSONHandler returns a JSONHandler writing to w at level Info and above.
func NewJSONHandler(w io.Writer) *JSONHandler {
	return &JSONHandler{w: w, fallback: slog.NewJSONHandler(w, nil)}
}

// Enabled reports whether level is logged: Info and above, as slog's default.
func (h *JSONHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo
}

// WithAttrs returns slog's JSON handler with the attributes: such loggers are not on the
// callback path.
func (h *JSONHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.fallback.WithAttrs(attrs)
}

// WithGroup returns slog's JSON handler with the group.
func (h *JSONHandler) WithGroup(name string) slog.Handler {
	return h.fallback.WithGroup(name)
}

var lines = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Handle writes r as one JSON line.
func (h *JSONHandler) Handle(ctx context.Context, r slog.Record) error {
	simple := true
	r.Attrs(func(a slog.Attr) bool {
		switch a.Value.Kind() {
		case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindBool:
			return true
		}
		simple = false
		return false
	})
	if y := r.Time.Year(); !simple || y < 0 || y >= 10000 {
		return h.fallback.Handle(ctx, r)
	}

	bp := lines.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, '{')
	if !r.Time.IsZero() {
		b = append(b, `"time":"`...)
		b = r.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = jsonstr.Append(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = jsonstr.Append(b, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b = append(b, ',')
		b = jsonstr.Append(b, a.Key)
		b = append(b, ':')
		switch a.Value.Kind() {
		case slog.KindString:
			b = jsonstr.Append(b, a.Value.String())
		case slog.KindInt64:
			b = strconv.AppendInt(b, a.Value.Int64(), 10)
		case slog.KindUint64:
			b = strconv.AppendUint(b, a.Value.Uint64(), 10)
		case slog.KindBool:
			b = strconv.AppendBool(b, a.Value.Bool())
		}
		return true
	})
	b = append(b, '}', '\n')
	_, err := h.w.Write(b)
	if cap(b) <= 16<<10 { // let the odd huge line go
		*bp = b
		lines.Put(bp)
	}
	return err
}
