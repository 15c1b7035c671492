package engine

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/reservist/reservist/rules"
)

// encodeAnswer writes the callback answer for an action: {"instruction": do, fields…} with
// snake_case keys and lists joined with commas (as TaskRouter expects); {} for defer.
func encodeAnswer(a *rules.Action, vals []Value) []byte {
	if a.Do == rules.Defer {
		return emptyAnswer
	}
	b := make([]byte, 0, 64+48*len(vals))
	b = append(b, `{"instruction":`...)
	b = appendString(b, a.Do)
	for _, v := range vals {
		b = append(b, ',')
		b = appendString(b, v.Field.Name)
		b = append(b, ':')
		switch x := v.Value.(type) {
		case string:
			b = appendString(b, x)
		case int:
			b = strconv.AppendInt(b, int64(x), 10)
		case bool:
			b = strconv.AppendBool(b, x)
		case []string:
			b = appendString(b, strings.Join(x, ","))
		}
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what JSON requires (and U+2028/2029, which
// break JavaScript readers), and replacing invalid UTF-8 as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
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
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
