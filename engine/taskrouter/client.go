package taskrouter

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	trv1 "github.com/twilio/twilio-go/rest/taskrouter/v1"
)

// restAPI is twilio-go's TaskRouter client with creds, whose every request goes to base
// (--twilio-base-url; "" is DefaultBaseURL) through a transport that runs it under the
// context of its call in calls, keyed by the SID that ends its path. It never logs or
// returns the token or secret.
func restAPI(creds Credentials, base string, calls *sync.Map) (*trv1.ApiService, *transport, error) {
	user, pass, err := creds.basicAuth()
	if err != nil {
		return nil, nil, err
	}
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, nil, fmt.Errorf("--twilio-base-url %q: must be http(s)://host[:port][/path]", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32 // a connection per concurrent call instead of the default two
	tr := &transport{base: t, target: u, calls: calls}
	c := &client.Client{
		Credentials: client.NewCredentials(user, pass),
		HTTPClient: &http.Client{
			// No Timeout here: it would hold a timer and a goroutine for the whole timeout
			// on every error answer, whose body twilio-go never closes. Each call's context
			// bounds it instead, and is released when the call returns.
			Transport: tr,
			// A redirect is a misconfigured base URL: report it, do not re-post the form
			// somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.SetAccountSid(creds.AccountSid)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c}).TaskrouterV1, tr, nil
}

// named makes an error of twilio-go's name the URL the request really went to. twilio-go
// builds every URL on https://taskrouter.twilio.com and net/http quotes that URL in its
// errors ("Post \"https://taskrouter.twilio.com/v1/…\": dial tcp …"), though the transport
// sent the request to the base URL: an operator reading the log must see where it went.
func (t *transport) named(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return err
	}
	u.Scheme, u.Host = t.target.Scheme, t.target.Host
	if !strings.HasPrefix(u.Path, t.target.Path+"/") {
		u.Path = t.target.Path + u.Path
	}
	u.RawPath = ""
	ue.URL = u.String()
	return err
}
