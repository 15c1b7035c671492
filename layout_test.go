package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/reservist/reservist"

// Which packages of the module each part may import, so that data flows one way (callback →
// parameters → environment → decision → answer or outbox) and nothing below reaches back up.
// A package matches the longest prefix listed; its own subtree is always allowed.
var mayImport = map[string][]string{
	"rules":         {"internal/typo"},
	"engine":        {"rules", "engine", "internal/typo"},
	"engine/outbox": {},
	// The suite every outbox backend passes: for tests only, it sends through the real
	// sender to the fake TaskRouter, with the tests' shared helpers.
	"engine/outbox/outboxtest": {"engine/outbox", "engine/taskrouter", "internal/testkit"},
	"engine/taskrouter":        {"engine/outbox", "rules"},
	// What became of each reservation: remembers decisions and counts events; it reads the
	// serving rules only to count since they were loaded.
	"engine/outcomes":     {"engine/reload"},
	"server":              {"rules", "engine", "internal/logbuf"},
	"internal/cli":        {"internal/typo"},
	"internal/typo":       {}, // "did you mean": below everything that names things
	"internal/config":     {"internal/cli", "engine/outbox", "engine/taskrouter", "engine/cases"},
	"internal/logbuf":     {"engine/jsonstr"},
	"internal/gcheadroom": {},
	"internal/testkit":    {},
	"internal/loadtest":   {"rules", "engine", "server", "engine/reload", "engine/cases"},
	"deploy":              {},
	"":                    {"rules", "engine", "server", "internal"}, // the root wires everything
}

// TestLayout holds every package's non-test imports to mayImport: nothing in rules knows
// decisions, nothing in engine knows HTTP, the outbox knows no rules file.
func TestLayout(t *testing.T) {
	root := "."
	imports := map[string]map[string]bool{} // package dir → module-internal imports
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		if dir == "." {
			dir = ""
		}
		if imports[dir] == nil {
			imports[dir] = map[string]bool{}
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if p == module {
				imports[dir][""] = true
			} else if rel, ok := strings.CutPrefix(p, module+"/"); ok {
				imports[dir][rel] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 10 {
		t.Fatalf("found %d packages; the walk is wrong", len(imports))
	}
	for dir, ims := range imports {
		part := partOf(dir)
		allowed := append(slices.Clone(mayImport[part]), part)
		for im := range ims {
			if im == "internal/testkit" && !slices.Contains(mayImport[part], im) {
				t.Errorf("%s imports internal/testkit, which is for tests only", display(dir))
				continue
			}
			if !slices.ContainsFunc(allowed, func(a string) bool { return within(im, a) && (a != "" || im == "") }) {
				t.Errorf("%s (part %s) imports %s, which it may not: it may import %v", display(dir), display(part), im, mayImport[part])
			}
		}
	}
}

// partOf is the longest key of mayImport that dir lies within.
func partOf(dir string) string {
	best := ""
	for p := range mayImport {
		if within(dir, p) && len(p) > len(best) {
			best = p
		}
	}
	return best
}

// within reports whether dir is p or below it; every dir is within "".
func within(dir, p string) bool {
	return p == "" || dir == p || strings.HasPrefix(dir, p+"/")
}

func display(dir string) string {
	if dir == "" {
		return "the root"
	}
	return dir
}
