package server

import (
	"net"
	"net/http"
	"strings"

	"github.com/reservist/reservist/server/internal/respond"
)

var (
	errHost        = respond.New(http.StatusForbidden, "the admin listener answers only requests addressed to localhost or an IP address, so that no web page can read it by DNS rebinding")
	errCrossOrigin = respond.New(http.StatusForbidden, "the admin listener refuses POSTs from other origins (cross-site forms and scripts); post from the playground page itself, or without a browser")
)

// localOnly refuses requests addressed to a host name other than localhost. The admin
// listener is unauthenticated and the playground shows callbacks' attributes; a web page
// could otherwise read them, or the metrics and the rules, from the operator's browser by
// pointing its own name at 127.0.0.1 (DNS rebinding). Requests addressed to an IP address
// or to localhost cannot come from such a page.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		lower := strings.ToLower(host)
		if net.ParseIP(host) == nil && lower != "localhost" && !strings.HasSuffix(lower, ".localhost") {
			respond.Err(w, errHost)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// noStore keeps browsers from caching answers that hold attributes.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// sameOrigin refuses a request that changes something (POST: a reload, a decision, a
// draft) when a browser sent it from another origin: a cross-site form or a text/plain
// fetch, which browsers send without asking. net/http's CrossOriginProtection tells by the
// Sec-Fetch-Site header, or the Origin header against Host; a request with neither (curl,
// scripts) is not a browser's and passes.
func sameOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(respond.Handler(errCrossOrigin))
	return cop.Handler(next)
}
