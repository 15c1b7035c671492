package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The metrics listener serves GET /metrics to any host, and nothing else: every other path
// is 404, another method on /metrics 405 with Allow.
func TestMetricsListener(t *testing.T) {
	h := newHarness(t)
	m := New(Options{Rules: h.rules, Gatherer: h.registry}).Metrics()
	for _, tc := range []struct {
		method, path, host string
		want               int
		allow              string
	}{
		{"GET", "/metrics", "10.1.2.3:9091", http.StatusOK, ""},
		{"GET", "/metrics", "reservist.monitoring.svc:9091", http.StatusOK, ""}, // metrics are not secret: any name
		{"POST", "/metrics", "10.1.2.3:9091", http.StatusMethodNotAllowed, "GET"},
		{"DELETE", "/metrics", "10.1.2.3:9091", http.StatusMethodNotAllowed, "GET"},
		{"GET", "/rules", "127.0.0.1:9091", http.StatusNotFound, ""},
		{"POST", "/-/reload", "127.0.0.1:9091", http.StatusNotFound, ""},
		{"GET", "/", "127.0.0.1:9091", http.StatusNotFound, ""},
		{"GET", "/healthz", "127.0.0.1:9091", http.StatusNotFound, ""},
		{"GET", "/schema.json", "127.0.0.1:9091", http.StatusNotFound, ""},
	} {
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest(tc.method, "http://"+tc.host+tc.path, nil))
		if rec.Code != tc.want || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s (Host %s) = %d, Allow %q; want %d, Allow %q", tc.method, tc.path, tc.host, rec.Code, rec.Header().Get("Allow"), tc.want, tc.allow)
		}
		if tc.want == http.StatusOK && !strings.Contains(rec.Body.String(), "reservist_callback_duration_seconds") {
			t.Errorf("GET /metrics lacks reservist_callback_duration_seconds:\n%.500s", rec.Body)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewBuildInfo("v1.2.3", "0123456789abcdef0123456789abcdef01234567", "go1.26.0")); err != nil {
		t.Fatal(err)
	}
	want := `# HELP reservist_build_info Always 1; its labels say which build runs: version, VCS revision and the Go release that built it.
# TYPE reservist_build_info gauge
reservist_build_info{goversion="go1.26.0",revision="0123456789abcdef0123456789abcdef01234567",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "reservist_build_info"); err != nil {
		t.Error(err)
	}
}
