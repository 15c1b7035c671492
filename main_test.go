package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reservist/reservist/internal/cli"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run this test binary as the `reservist` command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"reservist": func() {
			os.Exit(cli.Code(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr))
		},
	})
}

// haveTool is the scripts' [have:NAME] condition: NAME is a program on PATH. In CI
// (CI=true) a missing one is an error rather than a part of a script that silently never
// runs: .ci/run installs them.
func haveTool(cond string) (bool, error) {
	name, ok := strings.CutPrefix(cond, "have:")
	if !ok {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	if _, err := exec.LookPath(name); err == nil {
		return true, nil
	}
	if os.Getenv("CI") == "true" {
		return false, fmt.Errorf("%s is not installed; .ci/run installs it (apt-get install %s)", name, name)
	}
	return false, nil
}

// TestScripts runs the CLI scripts in testdata/script: each runs the real command and checks
// its output and exit code. $REPO is the repository root, for the example suite.
func TestScripts(t *testing.T) {
	repo, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("REPO", repo)
			return nil
		},
		Condition: haveTool,
	})
}
