package rules_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/reservist/reservist/rules"
)

// FuzzParse feeds arbitrary bytes to Parse: it must not panic, must return either a set or
// errors (never both, never neither), and every error must be located in the file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/*/*.yaml")
	more, _ := filepath.Glob("../testdata/example/rules.yaml")
	for _, path := range append(seeds, more...) {
		f.Add(mustRead(f, path))
	}
	f.Add([]byte("version: 1\nrules:\n  - {name: a, when: 'true', do: call, with: {from: '${ \"}\" }', url: 'https://x/${ {\"a\": 1}.a }'}}\n"))
	f.Add([]byte("version: 1\nvars: {a: &x [1, 2]}\nrules: [{name: b, when: '1 in vars.a', do: accept}]\ndefault: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := rules.Parse("f.yaml", data)
		if (set == nil) == (err == nil) {
			t.Fatalf("Parse returned set %v and error %v; want exactly one", set != nil, err)
		}
		if err != nil {
			lines := strings.Count(string(data), "\n") + 2
			for _, d := range err.(rules.Errors) {
				if d.Pos.Line < 1 || d.Pos.Line > lines || d.Pos.Col < 1 {
					t.Fatalf("diagnostic outside the file (%d lines): %s", lines, d)
				}
			}
			return
		}
		for _, r := range set.Rules {
			if r.Program == nil {
				t.Fatalf("rule %s has no compiled when", r.Name)
			}
		}
	})
}
