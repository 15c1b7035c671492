package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
)

// lint finds rules that can never match and vars that are never used.
func (p *parser) lint(set *Set) []Diagnostic {
	var out []Diagnostic
	var always *Rule
	for _, r := range set.Rules {
		if always != nil {
			out = append(out, Diagnostic{File: p.file, Pos: r.Pos, Warning: true,
				Msg: fmt.Sprintf("rule %s can never match: rule %s above it always matches (when: %s); move it above %s or remove it", r.Name, always.Name, strings.TrimSpace(always.When), always.Name)})
			continue
		}
		if b, ok := r.Program.Node().(*ast.BoolNode); ok && b.Value {
			always = r
		}
	}
	names := make([]string, 0, len(p.vars))
	for k := range p.vars {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if p.varUses[k] == 0 {
			out = append(out, Diagnostic{File: p.file, Pos: p.varPos[k], Warning: true,
				Msg: fmt.Sprintf("var %s is never used; use it as ${ vars.%s } or remove it", k, k)})
		}
	}
	sortDiagnostics(out)
	return out
}

// Lint returns the set's warnings plus those that depend on the environment: rules that send
// by REST while no Twilio credentials are configured.
func (s *Set) Lint(haveCredentials bool) []Diagnostic {
	out := slices.Clone(s.Warnings)
	if !haveCredentials {
		for _, a := range s.Actions() {
			if a.Via == REST {
				out = append(out, Diagnostic{File: s.Path, Pos: a.Pos, Warning: true,
					Msg: fmt.Sprintf("%s sends by REST but no Twilio credentials are set (TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET); its actions would only be logged as dry-run", a.Name)})
			}
		}
	}
	sortDiagnostics(out)
	return out
}
