package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// summary is a peer's figures over the rounds: the round with the median throughput, and
// the round with the median p99 at the steady rate.
type summary struct {
	wrk            *wrkResult
	rpsMin, rpsMax float64
	rate           *rateResult
	rssKB          int64
	ready          time.Duration
	overloaded     bool
}

func summarize(mm *measurement) *summary {
	if mm == nil {
		return nil
	}
	s := &summary{rssKB: mm.rssKB, ready: mm.ready, overloaded: mm.overloaded}
	if len(mm.wrk) > 0 {
		ws := slices.SortedFunc(slices.Values(mm.wrk), func(a, b *wrkResult) int { return cmp.Compare(a.rps, b.rps) })
		s.wrk, s.rpsMin, s.rpsMax = ws[(len(ws)-1)/2], ws[0].rps, ws[len(ws)-1].rps
	}
	if len(mm.rate) > 0 {
		rs := slices.SortedFunc(slices.Values(mm.rate), func(a, b *rateResult) int { return cmp.Compare(a.p99, b.p99) })
		s.rate = rs[(len(rs)-1)/2]
	}
	return s
}

// printTable prints each peer's figures, then the targets of issue 7 with the ratios.
func printTable(w io.Writer, o options, m *machine, peers []*peer, res map[string]*measurement) {
	sum := map[string]*summary{}
	for name, mm := range res {
		sum[name] = summarize(mm)
	}
	fmt.Fprintf(w, "\n%s\nload average after: %s\n", m, m.loadAfter)
	fmt.Fprintf(w, "medians of %d rounds; throughput: wrk -t%d -c%d -d%v; steady rate: %d/s open loop for %v after 1s warm-up\n",
		o.rounds, o.threads, o.conns, o.duration, o.rate, o.rateFor)
	fmt.Fprint(w, "other: cores busy with anything but the run (other processes, hypervisor steal) during that median round\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "peer\t req/s @%d\t (min–max)\t CPU/req\t p50\t p99\t errors\t other\t p50 @%d/s\t p99 @%d/s\t max\t failed\t other\t peak RSS\t ready\t\n",
		o.conns, o.rate, o.rate)
	for _, p := range peers {
		s := sum[p.name]
		if s == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t", p.label)
		if s.wrk != nil {
			fmt.Fprintf(tw, " %.0f\t (%.0f–%.0f)\t %s\t %s\t %s\t %d\t %.2f\t", s.wrk.rps, s.rpsMin, s.rpsMax, us(s.wrk.cpuPerReq), ms(s.wrk.p50), ms(s.wrk.p99), s.wrk.errors, s.wrk.other)
		} else {
			fmt.Fprint(tw, " -\t\t -\t -\t -\t -\t -\t")
		}
		switch {
		case s.rate != nil:
			fmt.Fprintf(tw, " %s\t %s\t %s\t %d\t %.2f\t", ms(s.rate.p50), ms(s.rate.p99), ms(s.rate.max), s.rate.failed, s.rate.other)
		case s.overloaded:
			fmt.Fprint(tw, " overloaded\t -\t -\t -\t -\t")
		default:
			fmt.Fprint(tw, " -\t -\t -\t -\t -\t")
		}
		fmt.Fprintf(tw, " %.1f MiB\t %s\t\n", float64(s.rssKB)/1024, ms(s.ready))
	}
	tw.Flush()

	fmt.Fprintln(w, "\ntargets (issue 7):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range targets(sum) {
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

func targets(sum map[string]*summary) []target {
	bare, full, many, flask := sum["bare"], sum["reservist"], sum["reservist-1000"], sum["flask"]
	rps := func(s *summary) float64 {
		if s == nil || s.wrk == nil {
			return 0
		}
		return s.wrk.rps
	}
	ratio := func(what string, a, b, min float64, times bool) target {
		if a == 0 || b == 0 {
			return target{what: what, missing: true}
		}
		r := a / b
		if times {
			return target{what: what, got: fmt.Sprintf("%.1f×", r), want: fmt.Sprintf("≥ %.0f×", min), ok: r >= min}
		}
		return target{what: what, got: fmt.Sprintf("%.0f%%", 100*r), want: fmt.Sprintf("≥ %.0f%%", 100*min), ok: r >= min}
	}
	ts := []target{
		ratio("full path throughput / bare", rps(full), rps(bare), 0.8, false),
		ratio("full path throughput / Flask", rps(full), rps(flask), 15, true),
		ratio("generated rules throughput / example rules", rps(many), rps(full), 0.8, false),
	}
	type named struct {
		name string
		s    *summary
	}
	both := []named{{"full path", full}, {"generated rules", many}}
	for _, r := range both {
		what := r.name + " p99 / bare p99 at the steady rate"
		if r.s == nil || r.s.rate == nil || bare == nil || bare.rate == nil {
			ts = append(ts, target{what: what, missing: true})
			continue
		}
		x := float64(r.s.rate.p99) / float64(bare.rate.p99)
		ts = append(ts, target{what: what, got: fmt.Sprintf("%.2f× (%s vs %s)", x, ms(r.s.rate.p99), ms(bare.rate.p99)), want: "≤ 2×", ok: x <= 2})
	}
	for _, r := range both {
		if r.s == nil {
			continue
		}
		ts = append(ts,
			target{what: r.name + " peak RSS", got: fmt.Sprintf("%.1f MiB", float64(r.s.rssKB)/1024), want: "≤ 40 MB (38.1 MiB)", ok: r.s.rssKB*1024 <= 40e6},
			target{what: r.name + " start to first /readyz 200", got: ms(r.s.ready), want: "≤ 100 ms", ok: r.s.ready <= 100*time.Millisecond})
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

// us formats a duration in microseconds.
func us(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}
