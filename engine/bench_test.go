package engine_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
)

// generatedRules writes n rules of the shape most rule files have (a channel or queue
// attribute compared with a constant, then a condition on the worker); only the last matches
// the benchmark's callback. A non-empty also is added to every condition.
func generatedRules(n int, also ...string) string {
	var b strings.Builder
	b.WriteString("version: 1\nvars:\n  busy: WA00000000000000000000000000000001\n")
	if len(also) > 0 {
		b.WriteString("timezone: America/New_York\nschedules:\n  support:\n    timezone: America/Chicago\n    hours: {mon-fri: \"08:00-18:00\", sat: [\"09:00-12:00\", \"13:00-15:00\"]}\n    closed: [2026-12-25, 2027-01-01]\n")
	}
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    when: task.attributes.queue == \"q%d\" && (worker.attributes.level ?? 0) >= 2%s\n", i, i, strings.Join(also, ""))
		if i%2 == 0 {
			b.WriteString("    do: accept\n")
		} else {
			b.WriteString("    do: reject\n    with: {activity_sid: \"${ vars.busy }\"}\n")
		}
	}
	return b.String()
}

func benchCallback(queue string) url.Values {
	p := testkit.CallbackWith(1,
		`{"queue":"`+queue+`","call_sid":"CA0123456789abcdef0123456789abcdef","from":"+15551234567","customer":{"tier":"gold"}}`,
		`{"level":3,"contact_uri":"client:alice","skills":["support","sales"]}`)
	p.Set("TaskAge", "30")
	p.Set("TaskPriority", "1")
	return p
}

// BenchmarkDecide decides a callback that only the last of n rules matches.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			set, err := rules.Parse("bench.yaml", []byte(generatedRules(n)))
			if err != nil {
				b.Fatal(err)
			}
			e := newEngineFromSet(set)
			params := benchCallback(fmt.Sprintf("q%d", n-1))
			if d := e.Decide(params, time.Time{}); d.Rule != fmt.Sprintf("r%d", n-1) {
				b.Fatalf("Decide() = %s (%v); want the last rule", d.Rule, d.Err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.Decide(params, time.Time{})
			}
		})
	}
}

// BenchmarkDecideOpen is BenchmarkDecide with open("support") in every condition, and the
// callback's Timestamp in support hours: what a schedule adds to a callback.
func BenchmarkDecideOpen(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			set, err := rules.Parse("bench.yaml", []byte(generatedRules(n, ` && open("support")`)))
			if err != nil {
				b.Fatal(err)
			}
			e := newEngineFromSet(set)
			params := benchCallback(fmt.Sprintf("q%d", n-1))
			params.Set("Timestamp", "1773062100") // Monday 08:15 in Chicago
			if d := e.Decide(params, time.Time{}); d.Rule != fmt.Sprintf("r%d", n-1) {
				b.Fatalf("Decide() = %s (%v); want the last rule", d.Rule, d.Err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.Decide(params, time.Time{})
			}
		})
	}
}

// BenchmarkDecideExample decides a typical voice callback with the example rules.
func BenchmarkDecideExample(b *testing.B) {
	e := newEngine(b, string(mustRead(b, "../testdata/example/rules.yaml")))
	params := benchCallback("support")
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(params, time.Time{})
	}
}
