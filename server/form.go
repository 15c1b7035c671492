package server

import (
	"net/url"
	"strings"
)

// parseForm is url.ParseQuery with fewer allocations, for the form of every callback:
// the map is made at its final size and the parameters' first values share one slice,
// where ParseQuery grows the map and allocates a slice per parameter. An error means the
// form is bad; unlike ParseQuery it returns no partial values with it.
func parseForm(s string) (url.Values, error) {
	n := strings.Count(s, "&") + 1
	if n > 256 {
		return url.ParseQuery(s) // no callback is like this: ParseQuery and its limits
	}
	m := make(url.Values, n)
	firsts := make([]string, 0, n)
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, "&")
		if kv == "" {
			continue
		}
		if strings.Contains(kv, ";") {
			return url.ParseQuery(kv) // for ParseQuery's own error
		}
		k, v, _ := strings.Cut(kv, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		if v, err = url.QueryUnescape(v); err != nil {
			return nil, err
		}
		if vs, ok := m[k]; ok {
			m[k] = append(vs, v) // each slice's capacity ends at its value: this copies
			continue
		}
		firsts = append(firsts, v)
		m[k] = firsts[len(firsts)-1 : len(firsts) : len(firsts)]
	}
	return m, nil
}
