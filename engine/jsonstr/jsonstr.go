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
		for i+8 <= len(s) && safeWord(s[i:i+8]) { // most strings are only these two loops
			i += 8
		}
		for i < len(s) && safe[s[i]] {
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

// safeWord reports whether the eight bytes of w are all safe, testing them at once: none is
// below 0x20, a quote, a backslash or 0x80 and above. (The tests for a byte below n and for
// a zero byte are the exact ones from Sean Anderson's "Bit Twiddling Hacks".)
func safeWord(w string) bool {
	x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, bs := x^('"'*ones), x^('\\'*ones) // zero where x has a quote, a backslash
	below := (x - 0x20*ones) &^ x        // high bit set in some byte if one is below 0x20
	quote := (q - ones) &^ q             // … if q has a zero byte
	backslash := (bs - ones) &^ bs
	return (x|below|quote|backslash)&highs == 0
}
