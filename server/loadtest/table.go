package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// printTable prints each peer's figures, then the targets of issue 7 with the ratios.
func printTable(w io.Writer, o options, m *machine, peers []*peer, res map[string]*measurement) {
	fmt.Fprintf(w, "\n%s\nload average after: %s\n\n", m, m.loadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "peer\t req/s @%d conns\t p50\t p99\t errors\t p50 @%d/s\t p99 @%d/s\t max\t sent/s\t failed\t peak RSS\t ready\t\n",
		o.conns, o.rate, o.rate)
	for _, p := range peers {
		mm := res[p.name]
		if mm == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t", p.label)
		if mm.wrk != nil {
			fmt.Fprintf(tw, " %.0f\t %s\t %s\t %d\t", mm.wrk.rps, ms(mm.wrk.p50), ms(mm.wrk.p99), mm.wrk.errors)
		} else {
			fmt.Fprint(tw, " -\t -\t -\t -\t")
		}
		fmt.Fprintf(tw, " %s\t %s\t %s\t %.0f\t %d\t %.1f MiB\t %s\t\n",
			ms(mm.rate.p50), ms(mm.rate.p99), ms(mm.rate.max), mm.rate.achieved, mm.rate.failed,
			float64(mm.rssKB)/1024, ms(mm.ready))
	}
	tw.Flush()

	fmt.Fprintln(w, "\ntargets (issue 7):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range targets(res) {
		verdict := "met"
		switch {
		case t.missing:
			verdict = "not measured"
		case !t.ok:
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.what, t.got, t.want, verdict)
	}
	tw.Flush()
}

// target is one of issue 7's targets as measured.
type target struct {
	what, got, want string
	ok, missing     bool
}

func targets(res map[string]*measurement) []target {
	bare, full, many, flask := res["bare"], res["reservist"], res["reservist-1000"], res["flask"]
	rps := func(m *measurement) float64 {
		if m == nil || m.wrk == nil {
			return 0
		}
		return m.wrk.rps
	}
	ratio := func(what string, a, b, min float64, unit string) target {
		if a == 0 || b == 0 {
			return target{what: what, missing: true}
		}
		r := a / b
		if unit == "×" {
			return target{what: what, got: fmt.Sprintf("%.1f×", r), want: fmt.Sprintf("≥ %.0f×", min), ok: r >= min}
		}
		return target{what: what, got: fmt.Sprintf("%.0f%%", 100*r), want: fmt.Sprintf("≥ %.0f%%", 100*min), ok: r >= min}
	}
	var ts []target
	ts = append(ts,
		ratio("full path throughput / bare", rps(full), rps(bare), 0.8, "%"),
		ratio("full path throughput / Flask", rps(full), rps(flask), 15, "×"),
		ratio("generated rules throughput / example rules", rps(many), rps(full), 0.8, "%"),
	)
	for _, r := range []struct {
		name string
		m    *measurement
	}{{"full path", full}, {"generated rules", many}} {
		if r.m == nil || bare == nil {
			ts = append(ts, target{what: r.name + " p99 / bare p99 at a steady rate", missing: true})
			continue
		}
		x := float64(r.m.rate.p99) / float64(bare.rate.p99)
		ts = append(ts, target{what: r.name + " p99 / bare p99 at a steady rate", got: fmt.Sprintf("%.2f× (%s vs %s)", x, ms(r.m.rate.p99), ms(bare.rate.p99)), want: "≤ 2×", ok: x <= 2})
	}
	for _, r := range []struct {
		name string
		m    *measurement
	}{{"full path", full}, {"generated rules", many}} {
		if r.m == nil {
			continue
		}
		mb := float64(r.m.rssKB) / 1024
		ts = append(ts,
			target{what: r.name + " peak RSS", got: fmt.Sprintf("%.1f MiB", mb), want: "≤ 40 MB (38.1 MiB)", ok: r.m.rssKB*1024 <= 40e6},
			target{what: r.name + " start to first /readyz 200", got: ms(r.m.ready), want: "≤ 100 ms", ok: r.m.ready <= 100*time.Millisecond})
	}
	return ts
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}
