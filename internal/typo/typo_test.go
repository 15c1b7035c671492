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
		{"", []string{"ab", "abc"}, "ab"}, // two edits
		{"xyz", nil, ""},
	} {
		if got := Closest(tt.got, tt.valid); got != tt.want {
			t.Errorf("Closest(%q, %q) = %q; want %q", tt.got, tt.valid, got, tt.want)
		}
	}
}
