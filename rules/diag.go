package rules

import (
	"cmp"
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
