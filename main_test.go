package main

import (
	"context"
	"os"
	"path/filepath"
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
	})
}
