// Package taskrouter talks to the TaskRouter REST API through twilio-go: the Sender that
// carries outbox actions out, and the Twilio credentials that it and the callback signature
// check need.
package taskrouter

import (
	"errors"
	"fmt"
	"regexp"
)

// The environment variables of Twilio's credentials: Twilio's own names.
const (
	EnvAccountSid = "TWILIO_ACCOUNT_SID"
	EnvAuthToken  = "TWILIO_AUTH_TOKEN"
	EnvAPIKey     = "TWILIO_API_KEY"
	EnvAPISecret  = "TWILIO_API_SECRET"
)

// Credentials are an account's Twilio credentials. The auth token checks callback
// signatures, and is a complete configuration alone: REST decisions are then a dry run. REST
// calls need the account SID too, and authenticate with the auth token or with an API key and
// its secret.
type Credentials struct {
	AccountSid, AuthToken, APIKey, APISecret string
}

// FromEnv reads the credentials from Twilio's variables and checks them as a whole: every
// problem is an error that names its variable and says what is right. This is the one rule
// of which credentials serve takes (docs/outbox.md, "Credentials"):
//   - TWILIO_AUTH_TOKEN alone: callbacks are signature-checked, REST decisions dry-run;
//   - TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or with TWILIO_API_KEY and TWILIO_API_SECRET:
//     REST calls are sent too;
//   - an account SID with neither secret, an API key without its secret or the reverse, an
//     API key without the account SID, or a value of the wrong shape: an error.
func FromEnv(getenv func(string) string) (Credentials, error) {
	c := Credentials{
		AccountSid: getenv(EnvAccountSid),
		AuthToken:  getenv(EnvAuthToken),
		APIKey:     getenv(EnvAPIKey),
		APISecret:  getenv(EnvAPISecret),
	}
	return c, c.check()
}

// REST reports whether the credentials allow REST calls.
func (c Credentials) REST() bool {
	return c.AccountSid != "" && (c.AuthToken != "" || c.APIKey != "")
}

var (
	accountSidRE = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	apiKeyRE     = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	// twilio-go refuses other characters in credentials, on every call; say so once, at start.
	credentialRE = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
)

// check says what is wrong with a set of credentials. Half a set is a mistake worth stopping
// for: REST calls would fail later, one reservation at a time.
func (c Credentials) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.AccountSid != "" && !accountSidRE.MatchString(c.AccountSid) {
		bad("%s must be AC followed by 32 hex digits, the account SID the Twilio Console shows (like AC0123456789abcdef0123456789abcdef)", EnvAccountSid)
	}
	if c.APIKey != "" && !apiKeyRE.MatchString(c.APIKey) {
		bad("%s must be SK followed by 32 hex digits, the API key's SID (its secret goes in %s)", EnvAPIKey, EnvAPISecret)
	}
	for _, v := range []struct{ name, value, what string }{
		{EnvAuthToken, c.AuthToken, "the account's auth token from the Twilio Console (32 hex digits)"},
		{EnvAPISecret, c.APISecret, "the secret Twilio showed once when the API key was made"},
	} {
		if v.value != "" && !credentialRE.MatchString(v.value) {
			bad("%s may hold only letters and digits, as Twilio's do: it is %s", v.name, v.what)
		}
	}
	switch {
	case c.APIKey != "" && c.APISecret == "":
		bad("%s is set but %s is not: set both, or neither", EnvAPIKey, EnvAPISecret)
	case c.APISecret != "" && c.APIKey == "":
		bad("%s is set but %s is not: set both, or neither", EnvAPISecret, EnvAPIKey)
	case c.AccountSid != "" && c.AuthToken == "" && c.APIKey == "":
		bad("%s is set without a secret: set %s (or %s and %s) with it to send REST calls, or unset it", EnvAccountSid, EnvAuthToken, EnvAPIKey, EnvAPISecret)
	case c.AccountSid == "" && c.APIKey != "":
		bad("%s and %s are set but %s is not: REST calls need the account too (%s alone is enough to check signatures)", EnvAPIKey, EnvAPISecret, EnvAccountSid, EnvAuthToken)
	}
	return errors.Join(errs...)
}

// basicAuth is the user name and password of REST calls: the API key and secret when set,
// else the account SID and auth token.
func (c Credentials) basicAuth() (user, pass string, err error) {
	if err := c.check(); err != nil {
		return "", "", err
	}
	switch {
	case !c.REST():
		return "", "", fmt.Errorf("no REST credentials: set %s with %s, or with %s and %s", EnvAccountSid, EnvAuthToken, EnvAPIKey, EnvAPISecret)
	case c.APIKey != "":
		return c.APIKey, c.APISecret, nil
	}
	return c.AccountSid, c.AuthToken, nil
}
