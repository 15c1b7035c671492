package rules_test

import (
	"strings"
	"testing"

	"github.com/reservist/reservist/rules"
)

// Expressions that would make expr recurse past the stack are refused by length before
// they are parsed: a stack overflow kills the process, and the playground parses drafts
// that anyone on the admin listener sends.
func TestExprTooLong(t *testing.T) {
	for _, tc := range []struct{ name, when, with, want string }{
		{"parens", strings.Repeat("(", 300000) + "true" + strings.Repeat(")", 300000), "", "f.yaml:4:11: when of rule r: the expression is 600004 bytes long; at most 8192"},
		{"unary", `"` + strings.Repeat("!", 600000) + `true"`, "", "f.yaml:4:12: when of rule r: the expression is 600004 bytes long"},
		{"template", "true", "${ " + strings.Repeat("-", 600000) + "1 }", "f.yaml:7:18: rule r: timeout: the expression is 600003 bytes long"},
	} {
		src := "version: 1\nrules:\n  - name: r\n    when: " + tc.when + "\n    do: dequeue\n    with:\n      timeout: " + tc.with + "\n"
		if tc.with == "" {
			src = "version: 1\nrules:\n  - name: r\n    when: " + tc.when + "\n    do: accept\n"
		}
		_, err := rules.Parse("f.yaml", []byte(src))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: error %.200v; want prefix %q", tc.name, err, tc.want)
		}
	}
	// Just under the bound is an ordinary expression.
	list := `task.attributes.queue in ["` + strings.Repeat("q", 8000) + `"]`
	if _, err := rules.Parse("f.yaml", []byte("version: 1\nrules:\n  - name: r\n    when: "+list+"\n    do: accept\n")); err != nil {
		t.Errorf("a %d-byte when: %v", len(list), err)
	}
}
