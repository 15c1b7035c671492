package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogDurations: no time.Duration reaches a log line, where slog's JSON handler writes it
// as bare nanoseconds ("took":3673065); a duration is logged as seconds under a key ending in
// _seconds, or in µs under _us. It type-checks every package of the module and looks at
// every call into log/slog: an argument of type time.Duration (or a struct holding one),
// and slog.Duration and slog.DurationValue themselves, are refused. (Durations from code
// outside the module are turned into seconds by logbuf.Seconds at run time.)
func TestLogDurations(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the whole module")
	}
	pkgs := listPackages(t)
	exports := map[string]string{}
	for _, p := range pkgs {
		if p.Export != "" {
			exports[p.ImportPath] = p.Export
		}
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	checked := 0
	for _, p := range pkgs {
		if p.DepOnly || p.Standard || !strings.HasPrefix(p.ImportPath, module) || len(p.GoFiles) == 0 {
			continue
		}
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{}}
		conf := types.Config{Importer: imp, Error: func(error) {}}
		if _, err := conf.Check(p.ImportPath, fset, files, info); err != nil {
			t.Fatalf("type-checking %s: %v", p.ImportPath, err)
		}
		checked++
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				fn, method := slogFunc(info, call.Fun)
				if fn == "" {
					return true
				}
				if !method && (fn == "Duration" || fn == "DurationValue") {
					t.Errorf("%s: slog.%s logs nanoseconds: log d.Seconds() under a key ending _seconds", fset.Position(call.Pos()), fn)
					return true
				}
				for _, a := range call.Args {
					if tv, ok := info.Types[a]; ok && holdsDuration(tv.Type) {
						t.Errorf("%s: a %s goes to slog.%s, which logs it as nanoseconds: log .Seconds() under a key ending _seconds (or .Microseconds() under _us)",
							fset.Position(a.Pos()), tv.Type, fn)
					}
				}
				return true
			})
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d packages; the module has more: go list found %d", checked, len(pkgs))
	}
}

// goPackage is what go list says of a package.
type goPackage struct {
	ImportPath, Dir, Export string
	GoFiles                 []string
	Standard, DepOnly       bool
}

// listPackages lists the module's packages and their dependencies, with export data.
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-export", "-deps", "-json=ImportPath,Dir,Export,GoFiles,Standard,DepOnly", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// slogFunc is the name of the log/slog function or method fun calls, or "".
func slogFunc(info *types.Info, fun ast.Expr) (name string, method bool) {
	var id *ast.Ident
	switch f := fun.(type) {
	case *ast.Ident:
		id = f
	case *ast.SelectorExpr:
		id = f.Sel
	default:
		return "", false
	}
	obj, ok := info.Uses[id].(*types.Func)
	if !ok || obj.Pkg() == nil || obj.Pkg().Path() != "log/slog" {
		return "", false
	}
	return obj.Name(), obj.Signature().Recv() != nil
}

// holdsDuration reports whether a value of type t is, or directly holds, a time.Duration.
func holdsDuration(t types.Type) bool {
	if isDuration(t) {
		return true
	}
	if p, ok := t.Underlying().(*types.Pointer); ok {
		t = p.Elem()
	}
	if s, ok := t.Underlying().(*types.Struct); ok {
		for i := range s.NumFields() {
			if f := s.Field(i); f.Exported() && isDuration(f.Type()) {
				return true
			}
		}
	}
	return false
}

func isDuration(t types.Type) bool {
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "time" && n.Obj().Name() == "Duration"
}
