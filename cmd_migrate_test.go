package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/reservist/reservist/internal/cli"
	"github.com/reservist/reservist/internal/pgtest"
)

// runMigrate runs `reservist migrate` through run() and returns its output and exit code.
func runMigrate(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"migrate"}, args...), func(string) string { return "" }, &out, &errOut)
	code = cli.Code(err, &errOut)
	return out.String(), errOut.String(), code
}

func TestMigrateUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{nil, cli.Usage, "reservist migrate: --outbox is needed: the shared outbox's database"},
		{[]string{"--outbox", "bbolt"}, cli.Usage, "bbolt needs no migration"},
		{[]string{"--outbox", "mysql://u:s3cret@db/x"}, cli.Usage, "must be a PostgreSQL URL"},
		{[]string{"--outbox", "postgres://u:s3cret@db:bad/x"}, cli.Usage, "invalid port"},
		{[]string{"--outbox", "postgres://db/x", "extra"}, cli.Usage, `unexpected argument "extra": migrate takes none`},
		{[]string{"--outbox", "postgres://db/x", "--timeout", "0s"}, cli.Usage, "--timeout"},
		{[]string{"--frobnicate"}, cli.Usage, "reservist migrate: unknown flag --frobnicate; run 'reservist migrate -h'\n"},
		// Nothing listens on port 1: the database cannot be reached.
		{[]string{"--outbox", "postgres://u:s3cret@127.0.0.1:1/x", "--timeout", "5s"}, cli.Runtime, "postgres://u:xxxxx@127.0.0.1:1/x"},
	} {
		_, stderr, code := runMigrate(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.inStderr) {
			t.Errorf("migrate %q: exit %d, stderr %q; want exit %d, stderr with %q", tc.args, code, stderr, tc.code, tc.inStderr)
		}
		if strings.Contains(stderr, "s3cret") {
			t.Errorf("migrate %q: stderr shows the password: %s", tc.args, stderr)
		}
		// A usage error is one line, saying where the flags are explained.
		if tc.code == cli.Usage && (strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "; run 'reservist migrate -h'\n")) {
			t.Errorf("migrate %q: usage error %q; want one line ending with where the flags are explained", tc.args, stderr)
		}
	}
	// -h: the usage and the flags, on stdout.
	stdout, stderr, code := runMigrate(t, "-h")
	if code != cli.OK || stderr != "" || !strings.HasPrefix(stdout, "Usage: reservist migrate --outbox URL") || !strings.Contains(stdout, "  --timeout duration\n") {
		t.Errorf("migrate -h: exit %d, stdout %q, stderr %q; want the usage on stdout", code, stdout, stderr)
	}
}

// TestMigrate: on an empty database migrate creates the schema and says so; run again it
// finds it current; a database that does not exist exits 3.
func TestMigrate(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	stdout, stderr, code := runMigrate(t, "--outbox", url)
	if code != cli.OK || !strings.Contains(stdout, "the outbox schema is at version") || !strings.Contains(stdout, "applied [1 ") {
		t.Errorf("migrate on an empty database: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runMigrate(t, "--outbox", url)
	if code != cli.OK || !strings.Contains(stdout, "the outbox schema is current") {
		t.Errorf("migrate again: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	_, stderr, code = runMigrate(t, "--outbox", srv.DatabaseURL("no_such_database"))
	if code != cli.Runtime || !strings.Contains(stderr, `database "no_such_database" does not exist`) {
		t.Errorf("migrate a database that does not exist: exit %d, stderr %q; want 3 saying so", code, stderr)
	}
}
