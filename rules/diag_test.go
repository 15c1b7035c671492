package rules_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/reservist/reservist/rules"
)

func TestErrorLines(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{nil, nil},
		{errors.New("read rules: gone"), []string{"read rules: gone"}},
		{errors.New("two\nlines\n"), []string{"two", "lines"}},
		{rules.Errors{{File: "r.yaml", Pos: rules.Pos{Line: 1, Col: 2}, Msg: "bad"}}, []string{"r.yaml:1:2: bad"}},
	} {
		if got := rules.ErrorLines(tc.err); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ErrorLines(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}
