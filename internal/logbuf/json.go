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
	level    slog.Level
	fallback slog.Handler
}

// NewJSONHandler returns a JSONHandler writing to w at level Info and above.
func NewJSONHandler(w io.Writer) *JSONHandler { return NewJSONHandlerAt(w, slog.LevelInfo) }

// NewJSONHandlerAt returns a JSONHandler writing to w at level and above.
func NewJSONHandlerAt(w io.Writer, level slog.Level) *JSONHandler {
	return &JSONHandler{w: w, level: level, fallback: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})}
}

// Enabled reports whether level is logged: the handler's level and above.
func (h *JSONHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level
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
		simple = simpleKind(a)
		return simple
	})
	if y := r.Time.Year(); !simple || y < 0 || y >= 10000 {
		return h.fallback.Handle(ctx, r)
	}
	bp, b := begin(r.Time, r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, a)
		return true
	})
	return h.end(bp, b)
}

// HandleAttrs writes the line Handle writes for a record of t, level, msg and attrs,
// without making the record: a record holds five attributes and allocates for the rest,
// and the decision log has ten.
func (h *JSONHandler) HandleAttrs(ctx context.Context, t time.Time, level slog.Level, msg string, attrs []slog.Attr) error {
	simple := true
	for _, a := range attrs {
		simple = simple && simpleKind(a)
	}
	if y := t.Year(); !simple || y < 0 || y >= 10000 {
		r := slog.NewRecord(t, level, msg, 0)
		r.AddAttrs(attrs...)
		return h.fallback.Handle(ctx, r)
	}
	bp, b := begin(t, level, msg)
	for _, a := range attrs {
		b = appendAttr(b, a)
	}
	return h.end(bp, b)
}

// simpleKind reports whether JSONHandler writes a itself; slog's handler writes the rest.
func simpleKind(a slog.Attr) bool {
	switch a.Value.Kind() {
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindBool:
		return true
	}
	return false
}

// begin starts a line in a pooled buffer: the time, level and message.
func begin(t time.Time, level slog.Level, msg string) (*[]byte, []byte) {
	bp := lines.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, '{')
	if !t.IsZero() {
		b = append(b, `"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = jsonstr.Append(b, level.String())
	b = append(b, `,"msg":`...)
	return bp, jsonstr.Append(b, msg)
}

// appendAttr appends ,"key":value for an attribute of a simple kind.
func appendAttr(b []byte, a slog.Attr) []byte {
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
	return b
}

// end finishes the line, writes it with one Write and gives the buffer back to the pool.
func (h *JSONHandler) end(bp *[]byte, b []byte) error {
	b = append(b, '}', '\n')
	_, err := h.w.Write(b)
	if cap(b) <= 16<<10 { // let the odd huge line go
		*bp = b
		lines.Put(bp)
	}
	return err
}
