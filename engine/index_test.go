package engine_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/internal/testkit"
)

func TestIndexAgreesWithFullEvaluation(t *testing.T) {
	t.Run("first conjunct", func(t *testing.T) { agreesWithFullEvaluation(t, testkit.Rules(t, "index")) })
	t.Run("leading comparisons", func(t *testing.T) { agreesWithFullEvaluation(t, testkit.Rules(t, "guards")) })
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
		fast, full := e.Decide(params, time.Time{}), e.Explain(params, time.Time{})
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
