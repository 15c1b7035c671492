package engine_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/reservist/reservist/engine"
)

// Rules whose first conjunct the index reads, mixed with rules it must always run.
const indexRules = `version: 1
vars:
  gold: gold
  yes: true
rules:
  - {name: eq, when: 'task.attributes.q == "a" && worker.attributes.n > 1', do: accept}
  - {name: eq-reversed, when: '"b" == task.attributes.q', do: accept}
  - {name: eq-bool, when: 'task.attributes.vip == true', do: accept}
  - {name: eq-var, when: 'task.attributes.tier == vars.gold && task.attributes.q != nil', do: accept}
  - {name: eq-var-bool, when: 'task.attributes.flag == vars.yes', do: accept}
  - {name: in, when: 'task.attributes.q in ["c", "d", ""]', do: accept}
  - {name: nested, when: 'task.attributes.customer.tier == "gold"', do: accept}
  - {name: optional, when: 'task.attributes.customer?.tier == "silver"', do: accept}
  - {name: optional-deep, when: 'task.attributes.customer?.plan.kind == "pro"', do: accept}
  - {name: worker, when: 'worker.attributes.team == "x" || worker.attributes.team == "y"', do: accept}
  - {name: worker-sid, when: 'worker.sid == "WK1"', do: accept}
  - {name: params, when: 'params.Custom == "" && task.attributes.q == "e"', do: accept}
  - {name: queue, when: 'task.queue_sid == "WQ1" && task.age > 5', do: accept}
  - {name: not-indexed, when: 'task.priority > 3', do: accept}
  - {name: in-bool, when: 'task.attributes.q in ["true"]', do: accept}
  - {name: not-nil, when: 'task.attributes.q != nil && task.attributes.q == task.attributes.tier', do: accept}
  - {name: not-nil-deep, when: 'task.attributes.customer.plan != nil', do: accept}
  - {name: last, when: 'task.attributes.q == "z" || task.attributes.n == 2', do: accept}
`

// Rules that start with several comparisons, each of which can reject a callback before the
// rule runs; and rules where that must not happen, because a comparison before it may fail.
const guardRules = `version: 1
rules:
  - {name: second, when: 'task.attributes.q != nil && task.attributes.vip == true', do: accept}
  - {name: third, when: 'task.attributes.q != nil && task.attributes.flag == true && task.attributes.tier == "gold"', do: accept}
  - {name: deep-second, when: 'task.attributes.q != nil && task.attributes.customer.tier == "gold" && task.attributes.n > 1', do: accept}
  - {name: deep-first, when: 'task.attributes.customer.plan == "pro" && task.attributes.q == "a"', do: accept}
  - {name: in-second, when: 'task.attributes.flag == true && task.attributes.q in ["a", "b"]', do: accept}
  - {name: after-other, when: 'task.priority > 3 && task.attributes.q == "a"', do: accept}
  - {name: parens, when: 'task.attributes.q != nil && (task.attributes.tier == "silver" && worker.attributes.team == "x")', do: accept}
  - {name: or-second, when: 'task.attributes.q != nil && (task.attributes.tier == "gold" || task.attributes.vip == true)', do: accept}
  - {name: optional-second, when: 'task.attributes.q == "c" && task.attributes.customer?.tier == "gold"', do: accept}
  - {name: number-second, when: 'task.attributes.q != nil && task.attributes.n > 1 && task.attributes.vip == false', do: accept}
  - {name: last, when: 'worker.attributes.n != nil', do: accept}
`

func TestIndexAgreesWithFullEvaluation(t *testing.T) {
	t.Run("first conjunct", func(t *testing.T) { agreesWithFullEvaluation(t, indexRules) })
	t.Run("leading comparisons", func(t *testing.T) { agreesWithFullEvaluation(t, guardRules) })
}

func agreesWithFullEvaluation(t *testing.T, rulesYAML string) {
	e := newEngine(t, rulesYAML)
	r := rand.New(rand.NewPCG(1, 2))
	values := []any{"a", "b", "c", "d", "e", "z", "", "true", "gold", "silver", "x", "y", true, false, nil, 1.0, 2.0, 5.0,
		map[string]any{"tier": "gold"}, map[string]any{"tier": "silver"}, map[string]any{"plan": map[string]any{"kind": "pro"}},
		map[string]any{"plan": "pro"}, []any{"a"}, "missing"}
	pick := func() any { return values[r.IntN(len(values))] }
	attrs := func(keys ...string) string {
		m := map[string]any{}
		for _, k := range keys {
			if v := pick(); v != "missing" {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	for i := range 20000 {
		params := url.Values{
			"TaskAttributes":   {attrs("q", "vip", "tier", "flag", "customer", "n")},
			"WorkerAttributes": {attrs("n", "team")},
			"WorkerSid":        {[]string{"WK1", "WK2"}[r.IntN(2)]},
			"TaskQueueSid":     {[]string{"WQ1", "WQ2"}[r.IntN(2)]},
			"TaskAge":          {fmt.Sprint(r.IntN(10))},
			"TaskPriority":     {fmt.Sprint(r.IntN(5))},
		}
		if r.IntN(2) == 0 {
			params.Set("Custom", "set")
		}
		fast, full := e.Decide(params), e.Explain(params)
		if fast.Rule != full.Rule || string(fast.Response()) != string(full.Response()) {
			t.Fatalf("callback %d %v: Decide = %s, Explain = %s; trace %+v", i, params, fast.Rule, full.Rule, full.Trace)
		}
		// Explain ran every rule up to the match; Decide may only have skipped rules that
		// evaluate to false without error, so the runtime errors must be the same.
		if diff := cmp.Diff(ruleErrorNames(full), ruleErrorNames(fast)); diff != "" {
			t.Fatalf("callback %d %v: rule errors differ (-explain +decide):\n%s", i, params, diff)
		}
	}
}

func ruleErrorNames(d *engine.Decision) []string {
	var out []string
	for _, re := range d.RuleErrors {
		out = append(out, re.Rule)
	}
	return out
}
