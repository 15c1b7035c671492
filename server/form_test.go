package server

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// sameAsParseQuery checks parseForm against url.ParseQuery: the same forms refused, the same
// values for the others.
func sameAsParseQuery(t *testing.T, s string) {
	t.Helper()
	want, wantErr := url.ParseQuery(s)
	got, err := parseForm(s)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("parseForm(%q) error = %v; ParseQuery's = %v", s, err, wantErr)
	}
	if err != nil {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseForm(%q) = %v; want %v", s, got, want)
	}
	// Appending to one parameter's values must not change another's.
	for k := range got {
		got[k] = append(got[k], "appended")
	}
	for k, vs := range got {
		if len(vs) != len(want[k])+1 || !reflect.DeepEqual(vs[:len(vs)-1], want[k]) {
			t.Fatalf("parseForm(%q): after appending, %s = %q; want %q and one more", s, k, vs, want[k])
		}
	}
}

var formSeeds = []string{
	"", "a=1", "a=1&b=2", "a=1&a=2&b=3&a=4", "a", "a=", "=b", "&&a=1&&", "a=1;b=2", "a=%zz", "%zz=1",
	"a=%41%42+c", "a+b=c+d", "a=1&b=2&a=3&b=4&c=5",
	"AccountSid=AC01&TaskAttributes=%7B%22call_sid%22%3A%22CA0e%22%7D&WorkerAttributes=%7B%7D",
	strings.Repeat("k=v&", 300),
}

func TestParseFormSameAsParseQuery(t *testing.T) {
	for _, s := range formSeeds {
		sameAsParseQuery(t, s)
	}
}

func FuzzParseForm(f *testing.F) {
	for _, s := range formSeeds {
		f.Add(s)
	}
	f.Fuzz(sameAsParseQuery)
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"", "a", "%41", "%4", "%zz", "a+b", "%7B%22k%22%3A%22v%22%7D", "%%41", "100%", "%e2%80%a8", "%fF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := url.QueryUnescape(s)
		got, ok := unescape(s)
		if ok != (err == nil) || got != want {
			t.Fatalf("unescape(%q) = %q, %v; QueryUnescape = %q, %v", s, got, ok, want, err)
		}
	})
}
