package server

import (
	"net/url"
	"strings"
)

// parseForm is url.ParseQuery made cheaper for the form of every callback: the map is made
// at its final size, the parameters' first values share one slice (ParseQuery grows the map
// and allocates a slice per parameter), and values are unescaped in one pass. An error
// means the form is bad; unlike ParseQuery it returns no partial values with it.
func parseForm(s string) (url.Values, error) {
	n := strings.Count(s, "&") + 1
	if n > 256 {
		return url.ParseQuery(s) // no callback is like this: ParseQuery and its limits
	}
	m := make(url.Values, n)
	firsts := make([]string, 0, n)
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, "&")
		if kv == "" {
			continue
		}
		if strings.Contains(kv, ";") {
			return url.ParseQuery(kv) // for ParseQuery's own error
		}
		k, v, _ := strings.Cut(kv, "=")
		k, ok := unescape(k)
		if !ok {
			return nil, errBadForm
		}
		if v, ok = unescape(v); !ok {
			return nil, errBadForm
		}
		if vs, ok := m[k]; ok {
			m[k] = append(vs, v) // each slice's capacity ends at its value: this copies
			continue
		}
		firsts = append(firsts, v)
		m[k] = firsts[len(firsts)-1 : len(firsts) : len(firsts)]
	}
	return m, nil
}

// unescape is url.QueryUnescape in one pass over s, where QueryUnescape checks s first and
// then builds the result a byte at a time; the attribute JSON in a callback is mostly
// escapes. ok is false for a % not followed by two hex digits.
func unescape(s string) (string, bool) {
	// Most values (SIDs, numbers) have nothing to unescape; IndexByte finds that out fastest.
	i := strings.IndexByte(s, '%')
	if p := strings.IndexByte(s, '+'); p >= 0 && (i < 0 || p < i) {
		i = p
	}
	if i < 0 {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			hi, lo := unhex[s[i+1]], unhex[s[i+2]]
			if hi > 0xf || lo > 0xf {
				return "", false
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
		case '+':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// unhex is the value of a hex digit, and 0xff for any other byte.
var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()
