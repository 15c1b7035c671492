package taskrouter_test

import (
	"strings"
	"testing"

	"github.com/reservist/reservist/engine/taskrouter"
)

// The credentials rule, case by case: what starts, whether REST calls are sent, and which
// variable each refusal names.
func TestFromEnv(t *testing.T) {
	const (
		sid    = "AC0123456789abcdef0123456789abcdef"
		token  = "5f0e9d8c7b6a59483726150f4e3d2c1b"
		key    = "SK0123456789abcdef0123456789abcdef"
		secret = "s3cr3tS3cr3t"
	)
	for _, tt := range []struct {
		name string
		env  map[string]string
		rest bool
		says []string // nil: accepted
	}{
		{"nothing", nil, false, nil},
		{"token alone: signatures, REST dry-run", map[string]string{"TWILIO_AUTH_TOKEN": token}, false, nil},
		{"account and token", map[string]string{"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token}, true, nil},
		{"account and API key", map[string]string{"TWILIO_ACCOUNT_SID": sid, "TWILIO_API_KEY": key, "TWILIO_API_SECRET": secret}, true, nil},
		{"account, token and API key", map[string]string{"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token, "TWILIO_API_KEY": key, "TWILIO_API_SECRET": secret}, true, nil},
		{"account without a secret", map[string]string{"TWILIO_ACCOUNT_SID": sid}, false, []string{"TWILIO_ACCOUNT_SID is set without a secret: set TWILIO_AUTH_TOKEN"}},
		{"API key without its secret", map[string]string{"TWILIO_ACCOUNT_SID": sid, "TWILIO_API_KEY": key}, false, []string{"TWILIO_API_KEY is set but TWILIO_API_SECRET is not"}},
		{"API secret without its key", map[string]string{"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token, "TWILIO_API_SECRET": secret}, false, []string{"TWILIO_API_SECRET is set but TWILIO_API_KEY is not"}},
		{"API key without the account", map[string]string{"TWILIO_API_KEY": key, "TWILIO_API_SECRET": secret}, false, []string{"REST calls need the account too"}},
		{"account SID of the wrong shape", map[string]string{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": token}, false, []string{"TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits"}},
		{"token with a dash", map[string]string{"TWILIO_AUTH_TOKEN": "abc-def"}, false, []string{"TWILIO_AUTH_TOKEN may hold only letters and digits"}},
		{"token with a dash, with the account", map[string]string{"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": "abc-def"}, false, []string{"TWILIO_AUTH_TOKEN may hold only letters and digits"}},
		{"API key of the wrong shape", map[string]string{"TWILIO_ACCOUNT_SID": sid, "TWILIO_API_KEY": "key1", "TWILIO_API_SECRET": secret}, false, []string{"TWILIO_API_KEY must be SK followed by 32 hex digits"}},
		{"secret with a colon", map[string]string{"TWILIO_ACCOUNT_SID": sid, "TWILIO_API_KEY": key, "TWILIO_API_SECRET": "a:b"}, false, []string{"TWILIO_API_SECRET may hold only letters and digits"}},
		{"two problems, both said", map[string]string{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_API_KEY": key}, false, []string{"TWILIO_ACCOUNT_SID must be AC", "TWILIO_API_KEY is set but TWILIO_API_SECRET is not"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := taskrouter.FromEnv(func(k string) string { return tt.env[k] })
			if tt.says == nil {
				if err != nil {
					t.Fatalf("FromEnv(%v) = %v; want it accepted", tt.env, err)
				}
				if c.REST() != tt.rest {
					t.Errorf("FromEnv(%v).REST() = %v; want %v", tt.env, c.REST(), tt.rest)
				}
				return
			}
			if err == nil {
				t.Fatalf("FromEnv(%v) accepted; want an error saying %q", tt.env, tt.says)
			}
			for _, want := range tt.says {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("FromEnv(%v) = %q; want it to say %q", tt.env, err, want)
				}
			}
			for _, secretValue := range []string{token, secret, "abc-def", "a:b"} {
				if strings.Contains(err.Error(), secretValue) {
					t.Errorf("FromEnv(%v) = %q: it shows a secret's value", tt.env, err)
				}
			}
		})
	}
}
