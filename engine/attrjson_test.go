package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// sameAsStdlib checks decodeObject against encoding/json: the same inputs accepted, the
// same values produced.
func sameAsStdlib(t *testing.T, s string) {
	t.Helper()
	var want map[string]any
	stdErr := json.Unmarshal([]byte(s), &want)
	if stdErr == nil && want == nil {
		stdErr = errNotObject // "null": not an object for us
	}
	got, err := decodeObject(s)
	if (err == nil) != (stdErr == nil) {
		t.Fatalf("decodeObject(%q) error = %v; encoding/json says %v", s, err, stdErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeObject(%q) = %#v; encoding/json gives %#v", s, got, want)
	}
}

var jsonSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":"b","a":"c"}`, `{"a":[1,2,{"b":null}],"c":true,"d":false}`,
	`{"n":-0.5e+10,"m":0,"o":-0,"p":1E-400,"q":1e400}`, `{"n":01}`, `{"n":1.}`, `{"n":.5}`, `{"n":-}`,
	`{"s":"\"\\\/\b\f\n\r\t\u00e9\u2028"}`, `{"s":"\ud83d\ude00"}`, `{"s":"\ud800"}`, `{"s":"\udc00\ud800x"}`,
	`{"s":"\ud800\u0041"}`, `{"s":"\ud800\uzzzz"}`, "{\"s\":\"\xff\xfe ok \xed\xa0\x80\"}", `{"s":"a` + "\x01" + `"}`,
	`{"s":"\x"}`, `{"a":tru}`, `{"a":nul}`, `{"a":1,}`, `{,}`, `{"a" 1}`, `{"a":1}x`, `{"a":1} `, `[1]`, `null`, `"x"`,
	`1`, ``, `{`, `{"a":[}`, "\ufeff{}", `{"a":"` + strings.Repeat("é", 100) + `"}`, `{"a":{"b":{"c":[[[]]]}}}`,
}

func TestDecodeObjectMatchesStdlib(t *testing.T) {
	for _, s := range jsonSeeds {
		sameAsStdlib(t, s)
	}
	// encoding/json refuses more than 10,000 levels of nesting.
	for _, depth := range []int{9999, 10000, 10001} {
		sameAsStdlib(t, `{"a":`+strings.Repeat("[", depth-1)+strings.Repeat("]", depth-1)+`}`)
	}
}

func FuzzDecodeObject(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add(s)
	}
	f.Fuzz(sameAsStdlib)
}

func BenchmarkAttributes(b *testing.B) {
	in := `{"queue":"support","call_sid":"CA0123456789abcdef0123456789abcdef","from":"+15551234567","customer":{"tier":"gold"},"language":"en","skills":["a","b"],"n":3}`
	b.Run("decodeObject", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeObject(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := json.Unmarshal([]byte(in), &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
