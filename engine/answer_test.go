package engine

import (
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/rules"
)

// BenchmarkEncode encodes the answer of the example's voice rule, whose templates make the
// answer differ from callback to callback (a constant answer is encoded once, at load).
func BenchmarkEncode(b *testing.B) {
	src, err := os.ReadFile("../testdata/example/rules.yaml")
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Parse("rules.yaml", src)
	if err != nil {
		b.Fatal(err)
	}
	form, err := os.ReadFile("../testdata/example/cases/voice.form")
	if err != nil {
		b.Fatal(err)
	}
	params, err := url.ParseQuery(strings.TrimSpace(string(form)))
	if err != nil {
		b.Fatal(err)
	}
	d := New(set).Decide(params, time.Time{})
	if d.Rule != "voice" || len(d.Values) == 0 {
		b.Fatalf("Decide(voice.form) = %s with %d values; want voice with values", d.Rule, len(d.Values))
	}
	b.ReportAllocs()
	for b.Loop() {
		encodeAnswer(d.Action, d.Values)
	}
}
