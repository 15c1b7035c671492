package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/server"
)

func voiceCallback(t *testing.T) url.Values {
	t.Helper()
	params, err := voiceParams("../../testdata/example/cases/voice.form")
	if err != nil {
		t.Fatal(err)
	}
	return params
}

// The generated file's last rule, and only it, decides the callback the runner sends, with
// the answer the example rules give it.
func TestGeneratedRulesLastMatches(t *testing.T) {
	want, err := goldenResponse("../../testdata/example/cases/voice.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	set, err := rules.Parse("generated.yaml", []byte(generatedRules(n)))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != n {
		t.Fatalf("generatedRules(%d) has %d rules", n, len(set.Rules))
	}
	d := engine.New(set).Explain(voiceCallback(t), time.Time{})
	if d.Rule != "support-line" || len(d.RuleErrors) != 0 {
		t.Fatalf("Decide(voice) = %s with errors %v; want support-line, the last rule", d.Rule, d.RuleErrors)
	}
	if len(d.Trace) != n {
		t.Errorf("explain tried %d rules; want all %d", len(d.Trace), n)
	}
	var got, w any
	json.Unmarshal(d.Response(), &got)
	json.Unmarshal(want, &w)
	if !reflect.DeepEqual(got, w) {
		t.Errorf("answer %s; want the example's %s", d.Response(), want)
	}
}

// The runner's signed callback is accepted by reservist's handler, and the steady-rate
// generator counts what it sends.
func TestSignedCallbackAndSteadyRate(t *testing.T) {
	rl, err := reload.New("../../testdata/example/rules.yaml", reload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Options{Rules: rl, AuthToken: authToken, CallbackPaths: []string{"/assignment_callback"}}).Callbacks())
	defer srv.Close()
	want, err := goldenResponse("../../testdata/example/cases/voice.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	params := voiceCallback(t)
	target := srv.URL + "/assignment_callback"
	r := request{url: target, body: params.Encode(), signature: server.NewValidator(authToken).Sign(target, params), want: want}
	if err := r.check(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := constantRate(context.Background(), r, 500, 20*time.Millisecond, 100*time.Millisecond, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.sent != 50 || res.failed != 0 || res.p99 == 0 || res.p50 > res.p99 {
		t.Errorf("constantRate = %+v; want 50 sent, none failed, 0 < p50 <= p99", res)
	}

	bad := r
	bad.signature = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
	if err := bad.check(context.Background()); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("check with a wrong signature = %v; want status 403", err)
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:8080/assignment_callback
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.34ms    1.04ms  20.16ms   86.35%
    Req/Sec    27.70k     1.82k   30.35k    77.00%
  Latency Distribution
     50%  812.00us
     75%    2.63ms
     90%    3.25ms
     99%    1.20s
  275678 requests in 10.00s, 35.76MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  27558.89
Transfer/sec:      3.57MB
`
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := &wrkResult{rps: 27558.89, requests: 275678, p50: 812 * time.Microsecond, p99: 1200 * time.Millisecond, errors: 11}
	if *got != *want {
		t.Errorf("parseWrk = %+v; want %+v", got, want)
	}
	if _, err := parseWrk("wrk: connection refused"); err == nil {
		t.Error("parseWrk of no report: no error")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tt := range []struct{ p, want int }{{50, 100}, {99, 198}, {100, 200}, {1, 2}} {
		if got := percentile(d, tt.p); got != time.Duration(tt.want) {
			t.Errorf("percentile(1..200, %d) = %d; want %d", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile(nil) = %v; want 0", got)
	}
}

func TestWrkScriptAndFlaskApp(t *testing.T) {
	s := wrkScript(request{body: "a=%7B%22x%22%7D&b=1", signature: "ab+/="})
	for _, want := range []string{`wrk.method = "POST"`, "[==[a=%7B%22x%22%7D&b=1]==]", "[==[ab+/=]==]", "application/x-www-form-urlencoded"} {
		if !strings.Contains(s, want) {
			t.Errorf("wrkScript lacks %q:\n%s", want, s)
		}
	}
	if !strings.Contains(flaskApp, "mimetype='application/json'") || !strings.Contains(flaskApp, "app.run(") {
		t.Errorf("flaskApp is not the tutorial's handler:\n%s", flaskApp)
	}
}

func TestPairedTargets(t *testing.T) {
	wrkRuns := func(rps ...float64) []*wrkResult {
		var out []*wrkResult
		for _, r := range rps {
			out = append(out, &wrkResult{rps: r})
		}
		return out
	}
	// The machine slows down in the middle rounds: the medians of each peer would give
	// 30000/40000 = 75%, the rounds' own ratios are all 85% or more.
	res := map[string]*measurement{
		"bare":      {wrk: wrkRuns(40000, 20000, 20000, 40000, 41000)},
		"reservist": {wrk: wrkRuns(34000, 17000, 17500, 35000, 34850)},
	}
	ts := targets(res)
	if got := ts[0]; got.what != "full path throughput / bare" || !got.ok || !strings.HasPrefix(got.got, "85% (rounds: 85% 85% 88% 88% 85%)") {
		t.Errorf("targets()[0] = %+v; want 85%% from the rounds' ratios, met", got)
	}
	if !ts[1].missing {
		t.Errorf("targets()[1] = %+v; want Flask not measured", ts[1])
	}

	// reservist without its GC headroom is a figure beside the targets, after the one it
	// qualifies.
	res["reservist-gogc100"] = &measurement{wrk: wrkRuns(30000, 15000, 15000, 30000, 30750)}
	ts = targets(res)
	if got := ts[1]; !got.info || !strings.HasPrefix(got.got, "75% (rounds: 75% 75% 75% 75% 75%)") {
		t.Errorf("targets()[1] = %+v; want the GOGC=100 figure, 75%%, for information", got)
	}
}
