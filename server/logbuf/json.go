package logbuf

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
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
	b = appendString(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = appendString(b, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b = append(b, ',')
		b = appendString(b, a.Key)
		b = append(b, ':')
		switch a.Value.Kind() {
		case slog.KindString:
			b = appendString(b, a.Value.String())
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

const hex = "0123456789abcdef"

// safe[c] reports whether the byte c stands for itself in a JSON string: ASCII other than
// control characters, quote and backslash.
var safe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as slog's JSON handler does: escaped as in encoding/json but
// without HTML escaping, invalid UTF-8 as \ufffd, and U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		for i < len(s) && safe[s[i]] { // most strings are only this loop
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
