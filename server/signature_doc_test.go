package server

import (
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/reservist/reservist/internal/testkit"
)

// signatureVector is the worked example of docs/taskrouter.md ("A worked vector"), computed
// for the doc outside Go; the test holds the Validator to the doc, so that neither can change
// without the other.
type signatureVector struct {
	token, url, body, signed, signature, alsoValid, unsorted string
}

// readSignatureVector reads the doc's ```signature-vector block: one "key: value" per line.
func readSignatureVector(t *testing.T) signatureVector {
	t.Helper()
	const path = "../docs/taskrouter.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "\n```signature-vector\n")
	if ok {
		block, _, ok = strings.Cut(block, "\n```")
	}
	if !ok {
		t.Fatalf("%s has no ```signature-vector block", path)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(block, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: signature-vector line %q is not key: value", path, line)
		}
		fields[k] = strings.TrimSpace(v)
	}
	v := signatureVector{
		token: fields["token"], url: fields["url"], body: fields["body"], signed: fields["signed"],
		signature: fields["signature"], alsoValid: fields["also valid"], unsorted: fields["unsorted"],
	}
	for k, s := range map[string]string{"token": v.token, "url": v.url, "body": v.body, "signed": v.signed,
		"signature": v.signature, "also valid": v.alsoValid, "unsorted": v.unsorted} {
		if s == "" {
			t.Fatalf("%s: the signature-vector block has no %q", path, k)
		}
	}
	return v
}

func TestValidatorDocVector(t *testing.T) {
	v := readSignatureVector(t)
	params, err := url.ParseQuery(v.body)
	if err != nil {
		t.Fatalf("the doc's body does not parse: %v", err)
	}

	// The string the doc says is signed is the URL and the parameters sorted by name.
	var b strings.Builder
	b.WriteString(v.url)
	for _, k := range slices.Sorted(maps.Keys(params)) {
		b.WriteString(k + params.Get(k))
	}
	if got := b.String(); got != v.signed {
		t.Errorf("url + sorted parameters = %q; the doc says %q", got, v.signed)
	}

	val := NewValidator(v.token)
	if got := val.Sign(v.url, params); got != v.signature {
		t.Errorf("Sign(%q) = %q; want %q", v.url, got, v.signature)
	}
	if got := testkit.Sign(v.token, v.url, params); got != v.signature {
		t.Errorf("testkit.Sign(%q) = %q; want %q", v.url, got, v.signature)
	}
	tests := []struct {
		name, url, sig string
		want           bool
	}{
		{"as signed", v.url, v.signature, true},
		{"with the default port", v.alsoValid, v.signature, true},
		{"parameters not sorted", v.url, v.unsorted, false},
		{"no signature", v.url, "", false},
	}
	for _, tt := range tests {
		if got := val.Valid(tt.url, params, tt.sig); got != tt.want {
			t.Errorf("%s: Valid(%q, …, %q) = %v; want %v", tt.name, tt.url, tt.sig, got, tt.want)
		}
	}
}
