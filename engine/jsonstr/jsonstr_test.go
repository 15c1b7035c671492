package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// sameAsEncodingJSON checks that Append writes valid JSON that reads back as the string
// encoding/json's own encoding of s reads back as (invalid UTF-8 becoming U+FFFD). The
// bytes are slog's, which server/logbuf's tests compare with slog itself.
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
