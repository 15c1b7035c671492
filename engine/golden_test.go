package engine_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files under ../testdata/*/cases")

// TestGolden runs every suite under testdata/ (a directory with rules.yaml and cases/) the way
// `reservist test` does. `go test ./engine -run Golden -update` rewrites the golden files;
// review the diff before committing it.
func TestGolden(t *testing.T) {
	suites, err := filepath.Glob("../testdata/*/rules.yaml")
	if err != nil || len(suites) == 0 {
		t.Fatalf("no suites under ../testdata: %v", err)
	}
	for _, path := range suites {
		dir := filepath.Dir(path)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			set, err := rules.Parse(path, data)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := cases.Load(filepath.Join(dir, "cases"))
			if err != nil || len(cs) == 0 {
				t.Fatalf("cases.Load: %d cases, %v", len(cs), err)
			}
			// Strict, as CI should run reservist test: a case with a warning fails.
			rep := cases.RunWith(engine.New(set), cs, cases.Options{Strict: true})
			if *update {
				written, err := rep.Update(false)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range written {
					t.Logf("wrote %s", f)
				}
				return
			}
			for _, r := range rep.Results {
				if !r.Passed() {
					for _, w := range r.Case.Warnings {
						t.Errorf("%s", w)
					}
					if r.Err != nil {
						t.Errorf("%s: %v", r.Case.Name, r.Err)
					} else if r.Diff != "" {
						t.Errorf("%s: decision differs from %s (- golden, + actual):\n%s", r.Case.Name, r.Case.Golden, r.Diff)
					}
				}
			}
			if len(rep.Unreached) > 0 {
				t.Errorf("rules no case reaches: %s; add a case for each", strings.Join(rep.Unreached, ", "))
			}
		})
	}
}
