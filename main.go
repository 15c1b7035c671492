// Command reservist answers Twilio TaskRouter assignment callbacks from rules.yaml.
//
// main only hands the process to run; serve.go wires the serve command's components and
// commands.go reads the other commands' flags and hands each to the package that does it.
package main

import (
	"context"
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

// programDoc heads the command list.
const programDoc = "reservist answers Twilio TaskRouter assignment callbacks from rules.yaml: it checks each callback against the rules, answers with the instruction the first matching rule names, and carries out by REST what cannot be answered."

// run is the whole program: main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return program(getenv, stdout, stderr).Run(ctx, args, stdout)
}

// program is reservist's command line: every command in the order the command list shows
// them. cli adds completion, version and help.
func program(getenv func(string) string, stdout, stderr io.Writer) *cli.Program {
	return &cli.Program{
		Doc:     programDoc,
		Default: "serve",
		Version: version,
		Commands: []*cli.Command{
			serveCommand(getenv, stderr, hooks{}),
			checkCommand(getenv, stdout, stderr),
			testCommand(getenv, stdout, stderr),
			explainCommand(getenv, stdout, stderr),
			schemaCommand(stdout),
			sendCommand(getenv, stdout, stderr),
			migrateCommand(stdout),
		},
	}
}

// buildVersion is set at link time by release builds: -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = ""

// version says which build this is: the linked version, else the module version and VCS
// revision Go recorded, else "devel".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	b := readBuild()
	v := b.version
	if b.revision != "unknown" && len(b.revision) >= 12 {
		v += " " + b.revision[:12]
	}
	if b.goVersion != "" {
		v += " " + b.goVersion
	}
	return v
}

// build is what reservist_build_info says of the running binary.
type build struct {
	version   string // the linked version, else the module version, else "devel"
	revision  string // the VCS revision Go recorded, else "unknown"
	goVersion string // the Go release that built it ("" when Go recorded nothing)
}

func readBuild() build {
	info, ok := debug.ReadBuildInfo()
	return buildOf(buildVersion, info, ok)
}

// buildOf reads a build from the version linked in (-X main.buildVersion) and what Go
// recorded in the binary.
func buildOf(linked string, info *debug.BuildInfo, ok bool) build {
	b := build{version: linked, revision: "unknown"}
	if !ok {
		if b.version == "" {
			b.version = "devel"
		}
		return b
	}
	b.goVersion = info.GoVersion
	if b.version == "" {
		b.version = info.Main.Version
		if b.version == "" || b.version == "(devel)" {
			b.version = "devel"
		}
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			b.revision = s.Value
		}
	}
	return b
}
