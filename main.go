// Command reservist answers Twilio TaskRouter assignment callbacks from rules.yaml.
//
// main only hands the process to run; serve.go wires the serve command's components and
// commands.go reads the other commands' flags and hands each to the package that does it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	// Mozilla's CA roots, for REST calls over TLS where the system has none: the image is
	// distroless, and a static binary must not depend on the host's files.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/reservist/reservist/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli.Code(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr))
}

const usage = `usage:
  reservist serve   [flags]                 run the callback server (the default)
  reservist check   [--rules FILE] [--strict]
  reservist test    [--rules FILE] [--update] [--run REGEX] [DIR...]
  reservist explain [--rules FILE] [--at TIME] CASE
  reservist schema
  reservist send    [--url URL] CASE
  reservist version

Run 'reservist COMMAND -h' for a command's flags.
`

// run is the whole program: main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-') {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr, hooks{})
	case "check":
		return check(args, getenv, stdout, stderr)
	case "test":
		return test(args, getenv, stdout, stderr)
	case "explain":
		return explain(args, getenv, stdout, stderr)
	case "schema":
		return schemaCmd(args, stdout, stderr)
	case "send":
		return send(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "reservist", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "reservist: unknown command %q\n%s", cmd, usage)
	return cli.Exit(cli.Usage, nil)
}

// buildVersion is set at link time by release builds: -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = ""

// version says which build this is: the linked version, else the module version and VCS
// revision Go recorded, else "devel".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + info.GoVersion
}
