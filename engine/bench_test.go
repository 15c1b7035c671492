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

// benchShapes are the rule files the benchmarks decide with: n rules of one shape, of which
// only the last matches benchCallback. They are the shapes internal/loadtest sends, each
// leading with a different kind of comparison, so that a shape the index does not take shows
// as a slow benchmark rather than hiding behind one that it does.
var benchShapes = []struct {
	name string
	rule func(i int) string // the when of rule i, which benchCallback does not match
	last string             // the when of the last rule, which it matches
}{
	{"strings", func(i int) string {
		return fmt.Sprintf(`task.attributes.queue == "q%d" && (worker.attributes.level ?? 0) >= 2`, i)
	}, `task.attributes.queue == "support" && (worker.attributes.level ?? 0) >= 2`},
	{"numbers", func(i int) string {
		switch i % 3 {
		case 0:
			return fmt.Sprintf(`task.attributes.account == %d && task.attributes.call_sid != nil`, i)
		case 1:
			return fmt.Sprintf(`task.attributes.account == %d.5 && task.attributes.call_sid != nil`, i)
		}
		return fmt.Sprintf(`%d == task.attributes.account && task.attributes.call_sid != nil`, i)
	}, `task.attributes.account == 40017 && task.attributes.call_sid != nil`},
	{"in", func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf(`task.attributes.account in [%d, %d, %d] && task.priority > 5`, 3*i, 3*i+1, 3*i+2)
		}
		return fmt.Sprintf(`task.attributes.account in [%d, "%d", true] && task.priority > 5`, 3*i, 3*i)
	}, `task.attributes.account in [40016, 40017, "40017"] && task.priority >= 0`},
	{"optional", func(i int) string {
		switch i % 3 {
		case 0:
			return fmt.Sprintf(`task.attributes.customer?.id == %d && task.attributes.call_sid != nil`, i)
		case 1:
			return fmt.Sprintf(`(task.attributes.customer?.tier ?? "none") == "tier%d"`, i)
		}
		return fmt.Sprintf(`(task.attributes.region ?? "us") == "r%d" && task.attributes.call_sid != nil`, i)
	}, `task.attributes.customer?.id == 7001 && task.attributes.call_sid != nil`},
	{"ranges", func(i int) string {
		return fmt.Sprintf(`task.attributes.score >= %d && task.attributes.score < %d && task.attributes.call_sid != nil`, 100+i, 101+i)
	}, `task.attributes.score >= 72 && task.attributes.score < 73 && task.attributes.call_sid != nil`},
	{"skills", func(i int) string {
		return fmt.Sprintf(`"skill%d" in worker.attributes.skills && task.attributes.call_sid != nil`, i)
	}, `"support" in worker.attributes.skills && task.attributes.call_sid != nil`},
	{"or", func(i int) string {
		return fmt.Sprintf(`(task.attributes.queue == "a%d" || task.attributes.queue == "b%d") && (worker.attributes.level ?? 0) >= 2`, i, i)
	}, `(task.attributes.queue == "sales" || task.attributes.queue == "support") && (worker.attributes.level ?? 0) >= 2`},
	{"mix", nil, `task.attributes.queue == "support" && (worker.attributes.level ?? 0) >= 2`},
}

// shapeRules writes n rules of the shape at index s of benchShapes; the mix takes rule i
// from shape i mod the others.
func shapeRules(s, n int) string {
	var b strings.Builder
	b.WriteString("version: 1\nvars:\n  busy: WA00000000000000000000000000000001\nrules:\n")
	for i := range n - 1 {
		shape := benchShapes[s]
		if shape.rule == nil {
			shape = benchShapes[i%(len(benchShapes)-1)]
		}
		writeRule(&b, i, shape.rule(i))
	}
	writeRule(&b, n-1, benchShapes[s].last)
	return b.String()
}

func writeRule(b *strings.Builder, i int, when string) {
	fmt.Fprintf(b, "  - name: r%d\n    when: '%s'\n", i, when)
	if i%2 == 0 {
		b.WriteString("    do: accept\n")
	} else {
		b.WriteString("    do: reject\n    with: {activity_sid: \"${ vars.busy }\"}\n")
	}
}

// benchCallback is a voice task with string, number, nested and list attributes, which the
// last rule of every shape matches.
func benchCallback() url.Values {
	p := testkit.CallbackWith(1,
		`{"queue":"support","call_sid":"CA0123456789abcdef0123456789abcdef","from":"+15551234567","account":40017,"score":72.5,"customer":{"tier":"gold","id":7001}}`,
		`{"level":3,"contact_uri":"client:alice","skills":["support","sales"]}`)
	p.Set("TaskAge", "30")
	p.Set("TaskPriority", "1")
	return p
}

// BenchmarkDecide decides a callback that only the last of 1,000 rules of each shape
// matches.
func BenchmarkDecide(b *testing.B) {
	const n = 1000
	for s, shape := range benchShapes {
		b.Run("shape="+shape.name, func(b *testing.B) {
			set, err := rules.Parse("bench.yaml", []byte(shapeRules(s, n)))
			if err != nil {
				b.Fatal(err)
			}
			e := newEngineFromSet(set)
			params := benchCallback()
			if d := e.Decide(params, time.Time{}); d.Rule != fmt.Sprintf("r%d", n-1) || len(d.RuleErrors) > 0 {
				b.Fatalf("Decide() = %s (%v, %v); want the last rule", d.Rule, d.Err, d.RuleErrors)
			}
			b.ReportAllocs()
			for b.Loop() {
				e.Decide(params, time.Time{})
			}
		})
	}
}

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
			params := queueCallback(fmt.Sprintf("q%d", n-1))
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

// queueCallback is a voice task in a queue.
func queueCallback(queue string) url.Values {
	p := testkit.CallbackWith(1,
		`{"queue":"`+queue+`","call_sid":"CA0123456789abcdef0123456789abcdef","from":"+15551234567","customer":{"tier":"gold"}}`,
		`{"level":3,"contact_uri":"client:alice","skills":["support","sales"]}`)
	p.Set("TaskAge", "30")
	p.Set("TaskPriority", "1")
	return p
}

// BenchmarkDecideExample decides a typical voice callback with the example rules.
func BenchmarkDecideExample(b *testing.B) {
	e := newEngine(b, string(mustRead(b, "../testdata/example/rules.yaml")))
	params := benchCallback()
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(params, time.Time{})
	}
}
