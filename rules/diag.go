package rules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Pos is a 1-based line and column in a rules file.
type Pos struct {
	Line, Col int
}

// Diagnostic is one problem found in a rules file.
type Diagnostic struct {
	File    string
	Pos     Pos
	Msg     string
	Warning bool // a lint finding; an error unless --strict is off
}

// String formats the diagnostic as FILE:LINE:COL: message, the form editors and CI jump to.
func (d Diagnostic) String() string {
	kind := ""
	if d.Warning {
		kind = "warning: "
	}
	return fmt.Sprintf("%s:%d:%d: %s%s", d.File, d.Pos.Line, d.Pos.Col, kind, d.Msg)
}

// Errors is every error found in a rules file. It is the error Parse returns.
type Errors []Diagnostic

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, d := range e {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

func sortDiagnostics(ds []Diagnostic) {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
}

// ErrorLines splits an error about rules into lines for people, logs and JSON bodies: one
// FILE:LINE:COL line per problem of a bad file, otherwise the error's text line by line (a
// reload gate's case diffs span several).
func ErrorLines(err error) []string {
	if err == nil {
		return nil
	}
	if re, ok := errors.AsType[Errors](err); ok {
		lines := make([]string, len(re))
		for i, d := range re {
			lines[i] = d.String()
		}
		return lines
	}
	return strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
}
