package main

import (
	"fmt"
	"io"

	"github.com/reservist/reservist/rules/schema"
)

// schemaCmd prints the JSON Schema of rules.yaml, for editors (yaml-language-server's
// `# yaml-language-server: $schema=…` comment) and CI linters.
func schemaCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("schema", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: reservist schema > rules.schema.json")
		fmt.Fprintln(stderr, "Prints the JSON Schema (draft 2020-12) of rules.yaml.")
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "reservist schema: unexpected argument %q; it takes none\n", pos[0])
		return exit(exitUsage, nil)
	}
	out, err := schema.JSON()
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
