package typo

import "testing"

func TestClosest(t *testing.T) {
	params := []string{"TaskAttributes", "TaskAge", "WorkerAttributes", "TaskSid"}
	for _, tt := range []struct {
		got   string
		valid []string
		want  string
	}{
		{"TaskAtributes", params, "TaskAttributes"},
		{"taskattributes", params, "TaskAttributes"}, // case alone is no edit
		{"WorkerAttribute", params, "WorkerAttributes"},
		{"TaskSID", params, "TaskSid"},
		{"Colour", params, ""}, // nothing near
		{"acept", []string{"accept", "reject"}, "accept"},
		{"stric", []string{"strict", "run"}, "strict"},
		{"", []string{"ab", "abc"}, ""},              // every edit
		{"x", []string{"v", "h"}, ""},                // one edit, but the whole word
		{"chek", []string{"check", "test"}, "check"}, // one edit of four
		{"wehn", []string{"name", "when"}, "when"},   // a transposition is one edit
		{"xyz", nil, ""},
	} {
		if got := Closest(tt.got, tt.valid); got != tt.want {
			t.Errorf("Closest(%q, %q) = %q; want %q", tt.got, tt.valid, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"when", "wehn", 1}, {"ab", "ba", 1}, {"abc", "ca", 3}, {"accept", "acept", 1},
	} {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d; want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
