package cases

import (
	"os"
	"strings"
	"testing"
)

// docs/cases.md's table of callback parameters is CallbackParams, row for row.
func TestDocsListTheCallbackParams(t *testing.T) {
	data, err := os.ReadFile("../../docs/cases.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "### Callback parameters\n")
	if !ok {
		t.Fatal("docs/cases.md has no section Callback parameters")
	}
	var names []string
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "## ") || strings.HasPrefix(line, "### ") {
			break
		}
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			names = append(names, name[:strings.IndexByte(name, '`')])
		}
	}
	if strings.Join(names, " ") != strings.Join(callbackParamNames, " ") {
		t.Errorf("docs/cases.md lists the callback parameters\n  %v\nthe code's table is\n  %v", names, callbackParamNames)
	}
}
