package server

import (
	"crypto/tls"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/reservist/reservist/internal/testkit"
	"github.com/twilio/twilio-go/client"
)

// The vectors Twilio publishes for its request validator: the webhook-security page's worked
// example and twilio-go's own tests, all with the auth token 12345.
func TestValidatorPublishedVectors(t *testing.T) {
	docs := url.Values{
		"Digits":  {"1234"},
		"To":      {"+18005551212"},
		"From":    {"+14158675310"},
		"Caller":  {"+14158675310"},
		"CallSid": {"CA1234567890ABCDE"},
	}
	older := func(caller string) url.Values {
		return url.Values{
			"Digits":  {"1234"},
			"To":      {"+18005551212"},
			"From":    {caller},
			"Caller":  {caller},
			"CallSid": {"CA1234567890ABCDE"},
		}
	}
	sdk := url.Values{
		"Digits":                {"1234"},
		"CallSid":               {"CA1234567890ABCDE"},
		"To":                    {"+18005551212"},
		"Caller":                {"+14158675309"},
		"From":                  {"+14158675309"},
		"ReasonConferenceEnded": {"test"},
		"Reason":                {"Participant"},
	}
	body := url.Values{"property": {"value"}, "boolean": {"true"}}
	const (
		httpsURL = "https://mycompany.com/myapp.php?foo=1&bar=2"
		httpURL  = "http://mycompany.com/myapp.php?foo=1&bar=2"
	)
	tests := []struct {
		name   string
		url    string
		params url.Values
		sig    string
		want   bool
	}{
		{"docs worked example", "https://example.com/myapp.php?foo=1&bar=2", docs, "L/OH5YylLD5NRKLltdqwSvS0BnU=", true},
		{"older docs example", httpsURL, older("+14158675309"), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", true},
		{"older docs example, other caller", httpsURL, older("+12349013030"), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", true},
		{"https", httpsURL, sdk, "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{"https, validated with a port the signature did not have", "https://mycompany.com:1234/myapp.php?foo=1&bar=2", sdk, "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{"https, validated with :443 added", "https://mycompany.com:443/myapp.php?foo=1&bar=2", sdk, "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{"https, signed with :443", httpsURL, sdk, "nlYDL9HO41xd+GBsch67HROPYMY=", true},
		{"https, signed and validated with :443", "https://mycompany.com:443/myapp.php?foo=1&bar=2", sdk, "nlYDL9HO41xd+GBsch67HROPYMY=", true},
		{"http", httpURL, sdk, "n2xBNyzSW7rfYStDtOFiFMv7qNo=", true},
		{"http, validated with a port", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", sdk, "n2xBNyzSW7rfYStDtOFiFMv7qNo=", true},
		{"http, signed with :1234", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", sdk, "hsSaxZrh1Uk7PmXmBUPep1JFq4g=", true},
		{"form body", httpsURL, body, "NBdBDr/T/lgjI+tlgpXjKZQZs/k=", true},

		{"wrong sort order (ReasonConferenceEnded before Reason)", httpsURL, sdk, "95+Bu0JVPi0r/SsESZCVf0dWAjw=", false},
		{"https signature over the http URL", httpURL, sdk, "vOEb5UThFn24KEfnOFLQY2AE5FY=", false},
		{"tampered parameter", httpsURL, with(sdk, "Digits", "1235"), "vOEb5UThFn24KEfnOFLQY2AE5FY=", false},
		{"extra parameter", httpsURL, with(sdk, "Extra", ""), "vOEb5UThFn24KEfnOFLQY2AE5FY=", false},
		{"other query string", "https://mycompany.com/myapp.php?foo=1&bar=3", sdk, "vOEb5UThFn24KEfnOFLQY2AE5FY=", false},
		{"no signature", httpsURL, sdk, "", false},
		{"not base64", httpsURL, sdk, "!!!", false},
	}
	v := NewValidator("12345")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.Valid(tt.url, tt.params, tt.sig); got != tt.want {
				t.Errorf("Valid(%q, %v, %q) = %v; want %v", tt.url, tt.params, tt.sig, got, tt.want)
			}
		})
	}
	if NewValidator("12346").Valid(httpsURL, sdk, "vOEb5UThFn24KEfnOFLQY2AE5FY=") {
		t.Errorf("a signature made with another token validated")
	}
}

// with returns a copy of v with key set to value.
func with(v url.Values, key, value string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	out.Set(key, value)
	return out
}

// The vectors above pin twilio-go; sign is the algorithm as Twilio documents it, written
// independently, so that the tests below sign requests without trusting the code under test.
func TestSignAgreesWithPublishedVector(t *testing.T) {
	params := url.Values{
		"Digits": {"1234"}, "To": {"+18005551212"}, "From": {"+14158675310"},
		"Caller": {"+14158675310"}, "CallSid": {"CA1234567890ABCDE"},
	}
	if got, want := testkit.Sign("12345", "https://example.com/myapp.php?foo=1&bar=2", params), "L/OH5YylLD5NRKLltdqwSvS0BnU="; got != want {
		t.Fatalf("testkit.Sign(docs example) = %q; want %q", got, want)
	}
}

func TestSignedURL(t *testing.T) {
	public, _ := url.Parse("https://reservist.example.com")
	tests := []struct {
		name   string
		public *url.URL
		target string
		host   string
		tls    bool
		want   string
	}{
		{"request's own", nil, "/assignment_callback?a=1", "127.0.0.1:8080", false, "http://127.0.0.1:8080/assignment_callback?a=1"},
		{"request's own over TLS", nil, "/cb", "reservist.example.com", true, "https://reservist.example.com/cb"},
		{"--public-url", public, "/assignment_callback?a=1", "127.0.0.1:8080", false, "https://reservist.example.com/assignment_callback?a=1"},
		{"path kept as sent", public, "/task%72outer/cb?x=%2F", "h", false, "https://reservist.example.com/task%72outer/cb?x=%2F"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tt.target, nil)
			r.Host = tt.host
			if !tt.tls {
				r.TLS = nil
			} else {
				r.TLS = &tls.ConnectionState{}
			}
			if got := signedURL(tt.public, r); got != tt.want {
				t.Errorf("signedURL(%v, %s) = %q; want %q", tt.public, tt.target, got, tt.want)
			}
		})
	}
}

// FuzzValidatorAgreesWithTwilioGo holds Validator to twilio-go's RequestValidator, which
// docs/taskrouter.md names, on URLs that twilio-go's own parsing leaves unchanged.
func FuzzValidatorAgreesWithTwilioGo(f *testing.F) {
	f.Add("https://mycompany.com/myapp.php?foo=1&bar=2", "Digits=1234&CallSid=CA1234567890ABCDE&Reason=Participant&ReasonConferenceEnded=test", "12345", "vOEb5UThFn24KEfnOFLQY2AE5FY=")
	f.Add("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "a=1", "12345", "")
	f.Add("https://reservist.example.com:443/assignment_callback", "TaskAttributes=%7B%7D", "tok", "x")
	f.Add("http://u:p@127.0.0.1:8080/cb?x=%2F", "", "t", "")
	f.Fuzz(func(t *testing.T, rawURL, form, token, sig string) {
		params, err := url.ParseQuery(form)
		if err != nil {
			return
		}
		u, err := url.Parse(rawURL)
		if err != nil || u.String() != rawURL || u.Hostname() == "" || strings.ContainsAny(u.Host, "[]") || strings.HasSuffix(u.Host, ":") {
			// twilio-go would validate a re-serialised URL (without "//" when only a port
			// is left of the host), or mangles IPv6 hosts
			return
		}
		first := map[string]string{}
		for k, vs := range params {
			first[k] = vs[0]
		}
		with, without := portVariants(rawURL)
		ref := client.NewRequestValidator(token)
		v := NewValidator(token)
		for _, s := range []string{sig, testkit.Sign(token, rawURL, params), testkit.Sign(token, with, params), testkit.Sign(token, without, params)} {
			if got, want := v.Valid(rawURL, params, s), ref.Validate(rawURL, first, s); got != want {
				t.Fatalf("Valid(%q, %q, %q) = %v; twilio-go says %v", rawURL, form, s, got, want)
			}
		}
	})
}

// portVariants is rawURL with its port (or the scheme's default) and without any.
func portVariants(rawURL string) (with, without string) {
	head, port, tail, def := splitPort(rawURL)
	if port == "" {
		port = def
	}
	return head + port + tail, head + tail
}

func TestPortVariants(t *testing.T) {
	tests := []struct{ in, with, without string }{
		{"https://h.example.com/p?q=1", "https://h.example.com:443/p?q=1", "https://h.example.com/p?q=1"},
		{"http://h.example.com/p", "http://h.example.com:80/p", "http://h.example.com/p"},
		{"http://127.0.0.1:8080/p?x=:1", "http://127.0.0.1:8080/p?x=:1", "http://127.0.0.1/p?x=:1"},
		{"https://u:p@h:1234?x", "https://u:p@h:1234?x", "https://u:p@h?x"},
		{"http://[::1]:80/p", "http://[::1]:80/p", "http://[::1]/p"},
		{"http://[::1]/p", "http://[::1]:80/p", "http://[::1]/p"},
		{"nonsense", "nonsense", "nonsense"},
	}
	for _, tt := range tests {
		if with, without := portVariants(tt.in); with != tt.with || without != tt.without {
			t.Errorf("portVariants(%q) = %q, %q; want %q, %q", tt.in, with, without, tt.with, tt.without)
		}
	}
}

// One Validator checks callbacks whose parameter names change from one to the next: the
// sorted names it keeps from the last callback must not be reused for another set.
func TestValidatorParameterNamesChange(t *testing.T) {
	v := NewValidator(testToken)
	const u = "https://reservist.example.com/assignment_callback"
	sets := []url.Values{
		{"A": {"1"}, "B": {"2"}, "C": {"3"}},
		{"A": {"1"}, "B": {"2"}, "D": {"3"}},
		{"A": {"1"}, "B": {"2"}},
		{"B": {"2"}, "A": {"1"}, "C": {"3"}, "E": {""}},
		{},
		{"A": {"1"}, "B": {"2"}, "C": {"4"}},
	}
	for round := range 3 {
		for i, p := range sets {
			if !v.Valid(u, p, testkit.Sign(testToken, u, p)) {
				t.Errorf("round %d, set %d: Valid(its own signature) = false", round, i)
			}
			other := sets[(i+1)%len(sets)]
			if v.Valid(u, p, testkit.Sign(testToken, u, other)) {
				t.Errorf("round %d, set %d: Valid(the next set's signature) = true", round, i)
			}
		}
	}
}
