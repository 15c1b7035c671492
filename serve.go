package main

import (
	"context"
	"errors"
	"io"
)

// serve runs the callback server. Being written (issue 3).
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return exit(exitUsage, errors.New("serve is not built yet"))
}
