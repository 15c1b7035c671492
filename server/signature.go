package server

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// SignatureHeader is the header TaskRouter signs callbacks in.
const SignatureHeader = "X-Twilio-Signature"

// Validator checks X-Twilio-Signature with an account's auth token (docs/taskrouter.md): HMAC-SHA1
// over the URL and the POST parameters sorted by name, base64, compared in constant time.
//
// It is twilio-go's client.RequestValidator.Validate computed without its costs — it builds
// the signed string by repeated concatenation and parses the URL four times, which made it
// the largest part of a callback — and tests hold it to twilio-go's answers. Like twilio-go
// it accepts the URL with and without the scheme's default port, because Twilio signs
// either way.
type Validator struct {
	key     []byte
	signers sync.Pool // *signer
}

// signer is one goroutine's HMAC and scratch space, reused across callbacks.
type signer struct {
	mac    hash.Hash
	keys   []string
	params []byte // the sorted names and values, as signed
	url    []byte
}

// NewValidator returns a Validator for an auth token.
func NewValidator(authToken string) *Validator {
	v := &Validator{key: []byte(authToken)}
	v.signers.New = func() any { return &signer{mac: hmac.New(sha1.New, v.key)} }
	return v
}

// Valid reports whether sig is the signature of rawURL (scheme to end of query string) and
// the POST parameters; a GET's parameters are in rawURL and params is nil. A repeated
// parameter is signed with its first value, as twilio-go does; callbacks repeat none.
func (v *Validator) Valid(rawURL string, params url.Values, sig string) bool {
	if sig == "" {
		return false
	}
	s := v.signer(params)
	defer v.release(s)
	// The URL as it arrived is tried first, and the other form only if that fails: the
	// time taken tells only whether the first matched, which the answer (200 or 403)
	// tells anyway.
	if s.matches(sig, rawURL) {
		return true
	}
	head, port, tail, def := splitPort(rawURL)
	if port == "" {
		return s.matches(sig, head, def, tail)
	}
	return s.matches(sig, head, tail)
}

// Sign returns the signature Twilio sends for rawURL and the POST parameters, for senders
// such as `reservist send` and tests.
func (v *Validator) Sign(rawURL string, params url.Values) string {
	s := v.signer(params)
	defer v.release(s)
	sig := s.sign(rawURL)
	return string(sig[:])
}

// signer takes a signer from the pool with the parameters prepared as they are signed: the
// names sorted, each followed by its first value.
func (v *Validator) signer(params url.Values) *signer {
	s := v.signers.Get().(*signer)
	if !s.sameKeys(params) {
		s.keys = s.keys[:0]
		for k := range params {
			// Cloned: the keys are kept for the next callback, not the body they are in.
			s.keys = append(s.keys, strings.Clone(k))
		}
		slices.Sort(s.keys)
	}
	s.params = s.params[:0]
	for _, k := range s.keys {
		s.params = append(s.params, k...)
		if vs := params[k]; len(vs) > 0 {
			s.params = append(s.params, vs[0]...)
		}
	}
	return s
}

// sameKeys reports whether params has the keys the signer sorted last. TaskRouter sends the
// same parameters with every callback, so the sort is mostly spared.
func (s *signer) sameKeys(params url.Values) bool {
	if len(s.keys) != len(params) {
		return false
	}
	for _, k := range s.keys {
		if _, ok := params[k]; !ok {
			return false
		}
	}
	return true
}

func (v *Validator) release(s *signer) {
	if cap(s.params) <= 64<<10 { // a pool of a few 1 MiB buffers is not worth keeping
		v.signers.Put(s)
	}
}

// sign computes the base64 signature of the URL made of parts and the prepared parameters.
func (s *signer) sign(parts ...string) [28]byte {
	s.url = s.url[:0]
	for _, p := range parts {
		s.url = append(s.url, p...)
	}
	s.mac.Reset()
	s.mac.Write(s.url)
	s.mac.Write(s.params)
	var sum [sha1.Size]byte
	var enc [28]byte // base64 of 20 bytes
	base64.StdEncoding.Encode(enc[:], s.mac.Sum(sum[:0]))
	return enc
}

// matches reports whether sig signs the URL made of parts and the parameters.
func (s *signer) matches(sig string, parts ...string) bool {
	enc := s.sign(parts...)
	return subtle.ConstantTimeCompare(enc[:], []byte(sig)) == 1
}

// splitPort splits rawURL around its port, so that head+port+tail == rawURL: port is "" or
// ":NNN", and def is the scheme's default (":443" for https, else ":80"). Only the host is
// looked at; the rest stays byte for byte as it was signed.
func splitPort(rawURL string) (head, port, tail, def string) {
	i := strings.Index(rawURL, "://")
	if i < 0 {
		return rawURL, "", "", ""
	}
	def = ":80"
	if strings.EqualFold(rawURL[:i], "https") {
		def = ":443"
	}
	start := i + 3
	end := len(rawURL)
	if j := strings.IndexAny(rawURL[start:], "/?#"); j >= 0 {
		end = start + j
	}
	hostStart := start + strings.LastIndexByte(rawURL[start:end], '@') + 1 // keep user:pass@
	host := rawURL[hostStart:end]
	if c := strings.LastIndexByte(host, ':'); c >= 0 && c > strings.LastIndexByte(host, ']') {
		return rawURL[:hostStart+c], host[c:], rawURL[end:], def
	}
	return rawURL[:end], "", rawURL[end:], def
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
