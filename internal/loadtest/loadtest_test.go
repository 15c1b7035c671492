package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
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
	params, err := callbackParams("../../testdata/example/cases/voice.form")
	if err != nil {
		t.Fatal(err)
	}
	return params
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// The attributes the runner adds to the voice callback leave the example rules' decision
// as the golden file has it.
func TestCallbackKeepsTheExampleAnswer(t *testing.T) {
	want, err := goldenResponse("../../testdata/example/cases/voice.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../testdata/example/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Parse("rules.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	params := voiceCallback(t)
	if d := engine.New(set).Decide(params, time.Time{}); d.Rule != "voice" || !sameJSON(d.Response(), want) {
		t.Errorf("the example rules decide %s with %s; want voice with %s", d.Rule, d.Response(), want)
	}
	var attrs map[string]any
	if err := json.Unmarshal([]byte(params.Get("TaskAttributes")), &attrs); err != nil || attrs["account"] != 40017.0 || attrs["call_sid"] == nil {
		t.Errorf("TaskAttributes = %s (%v); want the voice callback's with account 40017", params.Get("TaskAttributes"), err)
	}
}

// Each shape's last rule, and only it, decides the callback the runner sends, with the
// answer the example rules give it; every rule before it evaluates to false without an error.
func TestGeneratedRulesLastMatches(t *testing.T) {
	want, err := goldenResponse("../../testdata/example/cases/voice.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			set, err := rules.Parse("generated.yaml", []byte(generatedRules(s, n)))
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Rules) != n {
				t.Fatalf("generatedRules(%s, %d) has %d rules", s.name, n, len(set.Rules))
			}
			e := engine.New(set)
			d := e.Explain(voiceCallback(t), time.Time{})
			if d.Rule != "support-line" || len(d.RuleErrors) != 0 {
				t.Fatalf("Explain(voice) = %s with errors %v; want support-line, the last rule", d.Rule, d.RuleErrors)
			}
			if len(d.Trace) != n {
				t.Errorf("explain tried %d rules; want all %d", len(d.Trace), n)
			}
			if !sameJSON(d.Response(), want) {
				t.Errorf("answer %s; want the example's %s", d.Response(), want)
			}
			if fast := e.Decide(voiceCallback(t), time.Time{}); fast.Rule != d.Rule || string(fast.Response()) != string(d.Response()) {
				t.Errorf("Decide(voice) = %s %s; Explain gives %s %s", fast.Rule, fast.Response(), d.Rule, d.Response())
			}
		})
	}
	if _, err := selectShapes("strings,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("selectShapes(strings,nope) = %v; want an error naming nope", err)
	}
	if all, err := selectShapes("all"); err != nil || len(all) != len(shapes) {
		t.Errorf("selectShapes(all) = %d shapes, %v; want all %d", len(all), err, len(shapes))
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
		"reservist": {wrk: wrkRuns(36000, 18000, 18500, 37000, 36900)},
	}
	ts := targets(nil, res)
	if got := ts[0]; got.what != "full path throughput / bare" || !got.ok || !strings.HasPrefix(got.got, "90% (rounds: 90% 90% 92% 92% 90%)") {
		t.Errorf("targets()[0] = %+v; want 90%% from the rounds' ratios, met", got)
	}
	if !ts[1].missing {
		t.Errorf("targets()[1] = %+v; want Flask not measured", ts[1])
	}

	// reservist without its GC headroom is a figure beside the targets, after the one it
	// qualifies.
	res["reservist-gogc100"] = &measurement{wrk: wrkRuns(30000, 15000, 15000, 30000, 30750)}
	ts = targets(nil, res)
	if got := ts[1]; !got.info || !strings.HasPrefix(got.got, "75% (rounds: 75% 75% 75% 75% 75%)") {
		t.Errorf("targets()[1] = %+v; want the GOGC=100 figure, 75%%, for information", got)
	}

	// Each shape is held to the example rules and reported against bare.
	numbers := &peer{name: "rules-numbers", shape: "numbers"}
	res["rules-numbers"] = &measurement{wrk: wrkRuns(32400, 16200, 16650, 33300, 33210)}
	ts = targets([]*peer{numbers}, res)
	i := slices.IndexFunc(ts, func(t target) bool { return t.what == "numbers rules throughput / example rules" })
	if i < 0 || !ts[i].ok || !strings.HasPrefix(ts[i].got, "90% (rounds:") || !ts[i+1].info || ts[i+1].what != "numbers rules throughput / bare" {
		t.Errorf("targets() = %+v; want the numbers shape at 90%% of the example rules, met, then its share of bare", ts)
	}
}

// README's tables take the median of the runs and their spread.
func TestReadmeTables(t *testing.T) {
	wrkRun := func(rps float64) []*wrkResult {
		return []*wrkResult{{rps: rps, cpuPerReq: 40 * time.Microsecond, p50: time.Millisecond, p99: 5 * time.Millisecond}}
	}
	rateRun := func(p99 time.Duration) []*rateResult { return []*rateResult{{p50: time.Millisecond, p99: p99}} }
	run := func(bare, full, numbers float64) map[string]*measurement {
		return map[string]*measurement{
			"bare":          {wrk: wrkRun(bare), rate: rateRun(2 * time.Millisecond), rssKB: 19000, ready: 4 * time.Millisecond},
			"reservist":     {wrk: wrkRun(full), rate: rateRun(2 * time.Millisecond), rssKB: 29000, ready: 7 * time.Millisecond},
			"rules-numbers": {wrk: wrkRun(numbers), rate: rateRun(3 * time.Millisecond), rssKB: 31000, ready: 60 * time.Millisecond},
		}
	}
	peers := []*peer{{name: "bare", label: "bare"}, {name: "reservist", label: "example"}, {name: "rules-numbers", label: "numbers", shape: "numbers"}}
	o := options{rounds: 1, conns: 64, rate: 2000, rules: 1000}
	var b strings.Builder
	printReadme(&b, o, &machine{}, peers, []map[string]*measurement{run(40000, 36000, 36000), run(40000, 38000, 34200), run(40000, 34000, 30600)})
	out := b.String()
	for _, want := range []string{
		"| example | 36,000 (34,000–38,000) | 40 µs | 1.00 / 5.00 ms | 1.00 / 2.00 ms | 28.3 MiB | 7.00 ms |",
		"| numbers | 34,200 (30,600–36,000) | 40 µs | 1.00 / 5.00 ms | 1.00 / 3.00 ms | 30.3 MiB | 60 ms |",
		"| numbers | an attribute == an integer or a float, either way round | 90% (90–100%) | 86% (76–90%) | 1.50× |",
		"| full path throughput ≥ 90% of bare | met: example rules 90% (85–95%) |",
		"| every shape at 1,000 rules ≥ 90% of the example rules | met: furthest: numbers 90% (90–100%) |",
		"| peak RSS ≤ 30 MB | **missed**: example rules 28.3 MiB; furthest: numbers 30.3 MiB |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("README tables lack %q:\n%s", want, out)
		}
	}
}
