package server

import (
	"net/http"
	"net/url"

	"github.com/twilio/twilio-go/client"
)

// SignatureHeader is the header TaskRouter signs callbacks in.
const SignatureHeader = "X-Twilio-Signature"

// Validator checks X-Twilio-Signature with an account's auth token. It is twilio-go's
// request validator (constant-time, with and without the default port, reference §5) with
// the callback's parameters in the shape it wants.
type Validator struct {
	rv client.RequestValidator
}

// NewValidator returns a Validator for an auth token.
func NewValidator(authToken string) *Validator {
	return &Validator{rv: client.NewRequestValidator(authToken)}
}

// Valid reports whether sig is the signature of rawURL (scheme to end of query string) and
// the POST parameters; a GET's parameters are in rawURL and params is nil.
func (v *Validator) Valid(rawURL string, params url.Values, sig string) bool {
	if sig == "" {
		return false
	}
	m := make(map[string]string, len(params))
	for k, vs := range params {
		if len(vs) > 0 {
			// Assignment callbacks repeat no key; twilio-go's ValidateBody signs the
			// first value too.
			m[k] = vs[0]
		}
	}
	return v.rv.Validate(rawURL, m, sig)
}

// signedURL is the URL TaskRouter signed for r: --public-url (or the request's own scheme
// and host) + the path and query exactly as they arrived. Forwarded headers are not read:
// anyone can send them.
func signedURL(public *url.URL, r *http.Request) string {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		uri = r.URL.RequestURI() // absolute-form request line, or a request built in a test
	}
	if public != nil {
		return public.Scheme + "://" + public.Host + uri
	}
	return requestBase(r) + uri
}

// requestBase is scheme://host of the request as it reached reservist.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
