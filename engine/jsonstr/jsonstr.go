// Package jsonstr writes strings as JSON string literals byte for byte as log/slog's JSON
// handler does — encoding/json's escaping with HTML escaping off, except that \b and \f are
// written \u0008 and \u000c — appended to a byte slice without allocating. Callback answers
// and the decision log both write a JSON string per field on every callback.
package jsonstr

import "unicode/utf8"

const hex = "0123456789abcdef"

// safe[c] reports whether the byte c stands for itself in a JSON string: ASCII other than
// control characters, quote and backslash.
var safe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Append appends s to b as a quoted JSON string: control characters, quote and backslash
// escaped, invalid UTF-8 as \ufffd, and U+2028 and U+2029 escaped (they break JavaScript
// readers).
func Append(b []byte, s string) []byte {
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
