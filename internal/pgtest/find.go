package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrUnavailable is wrapped by the errors of New when this machine cannot run a PostgreSQL
// server at all (no binaries, or no user to run them as), as opposed to a server that was
// found but failed to start. Start and Shared skip the test on it, except under CI=true.
var ErrUnavailable = errors.New("pgtest: PostgreSQL is not available")

// installHint tells a developer how to get what is missing. Debian's package installs the
// binaries and creates the postgres system user.
const installHint = "install it with `apt-get install postgresql`, or set PGTEST_BINDIR to a directory holding initdb and postgres"

// binaries are the two programs a throwaway server needs.
type binaries struct {
	initdb, postgres string
}

// findBinaries looks for initdb and postgres. Debian installs them off PATH in a versioned
// directory (/usr/lib/postgresql/15/bin), which pg_config names; pg_config may also come
// from a client library package of another major version than the server, so every
// candidate directory is checked for both programs before it is used.
func findBinaries() (binaries, error) {
	if dir := os.Getenv("PGTEST_BINDIR"); dir != "" {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
		return binaries{}, fmt.Errorf("%w: PGTEST_BINDIR=%s holds no initdb and postgres; %s", ErrUnavailable, dir, installHint)
	}
	var candidates []string
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		if err == nil {
			candidates = append(candidates, strings.TrimSpace(string(out)))
		}
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(initdb))
	}
	candidates = append(candidates, versionedDirs("/usr/lib/postgresql")...)
	for _, dir := range candidates {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	return binaries{}, fmt.Errorf("%w: no initdb and postgres found (looked in `pg_config --bindir`, PATH and /usr/lib/postgresql/*/bin); %s",
		ErrUnavailable, installHint)
}

func binariesIn(dir string) (binaries, bool) {
	b := binaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	for _, p := range []string{b.initdb, b.postgres} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return binaries{}, false
		}
	}
	return b, true
}

// versionedDirs lists root/*/bin, newest major version first.
func versionedDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	type versioned struct {
		major int
		dir   string
	}
	var found []versioned
	for _, e := range entries {
		major, err := strconv.Atoi(strings.SplitN(e.Name(), ".", 2)[0])
		if err != nil {
			continue
		}
		found = append(found, versioned{major, filepath.Join(root, e.Name(), "bin")})
	}
	slices.SortFunc(found, func(a, b versioned) int { return b.major - a.major })
	dirs := make([]string, len(found))
	for i, v := range found {
		dirs[i] = v.dir
	}
	return dirs
}

// runAs is who initdb and postgres run as: nil for the current user, or the postgres
// system user when the current one is root, which both programs refuse to run as.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root, which initdb and postgres refuse, and there is no postgres user to run them as (%v); %s",
			ErrUnavailable, err, installHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%w: the postgres user has a non-numeric uid %q or gid %q", ErrUnavailable, u.Uid, u.Gid)
	}
	// An empty Groups drops root's supplementary groups rather than keeping them.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// childEnv is the environment of initdb and postgres: the test's, less the PG* variables
// that would point the programs elsewhere, in the C locale so that initdb behaves the same
// on every machine, and with a HOME the postgres user can enter.
func childEnv(home string) []string {
	env := []string{"LC_ALL=C", "HOME=" + home}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || strings.HasPrefix(name, "LC_") || name == "LANG" || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// chownAll gives dir and everything under it to cred's user, when there is one.
func chownAll(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.Uid), int(cred.Gid))
	})
}

// tail returns about the last n bytes of b, from a line start.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimSpace(string(b))
}
