package postgres

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// IsURL reports whether s names a PostgreSQL database, as --outbox takes it: a postgres://
// or postgresql:// URL.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// ParseURL reads an outbox URL as pgx does, libpq's PG* variables (PGPASSWORD, PGSSLMODE,
// PGHOST, …) filling in what it leaves out, so that a password need not be in the URL. Its
// errors never hold the password.
func ParseURL(s string) (*pgxpool.Config, error) {
	if !IsURL(s) {
		return nil, fmt.Errorf("%s is not a postgres:// URL", Redacted(s))
	}
	cfg, err := pgxpool.ParseConfig(s)
	if err != nil {
		return nil, err // pgx's message quotes the URL with the password masked
	}
	if !strings.Contains(s, "pool_max_conns") {
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	return cfg, nil
}

// Redacted is s with any password in it masked, for logs and messages.
func Redacted(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Not even a URL: show the scheme alone rather than risk a password.
		if scheme, _, ok := strings.Cut(s, "://"); ok {
			return scheme + "://…"
		}
		return "…"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// isCertificateError reports whether err is TLS refusing the server's certificate, which a
// later attempt will refuse again.
func isCertificateError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verifyErr)
}
