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
// signatures; REST calls authenticate with the account SID and the auth token, or with an
// API key and its secret.
type Credentials struct {
	AccountSid, AuthToken, APIKey, APISecret string
}

// FromEnv reads the credentials from Twilio's variables and checks them as a whole: every
// problem is an error that names its variable.
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
	// twilio-go refuses other characters in credentials, on every call; say so once, at start.
	credentialRE = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
)

// check says what is wrong with a set of credentials. Half a set is a mistake worth stopping
// for: REST calls would fail later, one reservation at a time.
func (c Credentials) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.APIKey != "" && c.APISecret == "":
		bad("%s is set but %s is not", EnvAPIKey, EnvAPISecret)
	case c.APISecret != "" && c.APIKey == "":
		bad("%s is set but %s is not", EnvAPISecret, EnvAPIKey)
	case c.AccountSid == "" && (c.AuthToken != "" || c.APIKey != ""):
		bad("%s is not set, but %s or %s is: set it too", EnvAccountSid, EnvAuthToken, EnvAPIKey)
	case c.AccountSid != "" && c.AuthToken == "" && c.APIKey == "":
		bad("%s is set without %s (or %s and %s)", EnvAccountSid, EnvAuthToken, EnvAPIKey, EnvAPISecret)
	}
	if c.AccountSid != "" && !accountSidRE.MatchString(c.AccountSid) {
		bad("%s must be AC followed by 32 hex digits", EnvAccountSid)
	}
	if c.REST() {
		for _, v := range []struct{ name, value string }{
			{EnvAuthToken, c.AuthToken}, {EnvAPIKey, c.APIKey}, {EnvAPISecret, c.APISecret},
		} {
			if v.value != "" && !credentialRE.MatchString(v.value) {
				bad("%s may hold only letters and digits, as Twilio's do", v.name)
			}
		}
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
