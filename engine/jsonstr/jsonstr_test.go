package jsonstr

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// sameAsEncodingJSON checks that Append writes valid JSON that reads back as the string
// encoding/json's own encoding of s reads back as (invalid UTF-8 becoming U+FFFD). The
// bytes are slog's, which internal/logbuf's tests compare with slog itself.
func sameAsEncodingJSON(t *testing.T, s string) {
	var want, got string
	enc, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(enc, &want); err != nil {
		t.Fatal(err)
	}
	b := Append([]byte("x"), s)
	if err := json.Unmarshal(b[1:], &got); err != nil || got != want || b[0] != 'x' {
		t.Fatalf("Append(%q) = %s, which reads back as %q (%v); encoding/json's %s reads back as %q", s, b[1:], got, err, enc, want)
	}
	if bytes.ContainsAny(b[1:], "<>&") != bytes.ContainsAny([]byte(s), "<>&") {
		t.Fatalf("Append(%q) = %s: HTML characters escaped", s, b[1:])
	}
}

var seeds = []string{"", "plain", `q"b\s`, "\n\r\t\b\f\x00\x1f\x7f", "<&>", "é ü 日本", "\u2028\u2029",
	"\xff\xfe", "a\xedb", "\xed\xa0\x80", "+15005550006", "https://example.com/a?b=c&d=e"}

func TestAppendMatchesEncodingJSON(t *testing.T) {
	for _, s := range seeds {
		sameAsEncodingJSON(t, s)
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(sameAsEncodingJSON)
}

func BenchmarkAppend(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], "https://example.com/twiml/agent-answer?task=WT0123456789abcdef0123456789abcdef")
	}
}

// safeWord must agree with the byte table for every word: each byte value at each of the
// eight places among safe bytes, and random words made of the bytes around the edges.
func TestSafeWordMatchesTable(t *testing.T) {
	bySafe := func(w string) bool {
		for i := range len(w) {
			if !safe[w[i]] {
				return false
			}
		}
		return true
	}
	check := func(w string) {
		t.Helper()
		if got, want := safeWord(w), bySafe(w); got != want {
			t.Fatalf("safeWord(%q) = %v; the table says %v", w, got, want)
		}
	}
	for c := range 256 {
		for at := range 8 {
			for _, fill := range []byte{'a', ' ', '~', '!', '#', '[', ']'} {
				w := bytes.Repeat([]byte{fill}, 8)
				w[at] = byte(c)
				check(string(w))
			}
		}
	}
	edges := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"' - 1, '"', '"' + 1, '\\' - 1, '\\', '\\' + 1, 0x7e, 0x7f, 0x80, 0x81, 0xa2, 0xdc, 0xfe, 0xff}
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]byte, 8)
	for range 200000 {
		for i := range w {
			if r.IntN(4) == 0 {
				w[i] = edges[r.IntN(len(edges))]
			} else {
				w[i] = byte(0x20 + r.IntN(0x5f))
			}
		}
		check(string(w))
	}
}

// Each kind of byte that must be escaped, at every place of a long string, goes through
// the eight-byte scan and the byte loop alike.
func TestAppendEscapesAtEveryPlace(t *testing.T) {
	for _, c := range []string{"\x00", "\x1f", "\"", "\\", "\n", "\x7f", "é", "\u2028", "\xff", "🙂"} {
		for at := range 24 {
			sameAsEncodingJSON(t, strings.Repeat("a", at)+c+strings.Repeat("b", 24-at))
		}
	}
}
