package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
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

// printTable prints each peer's figures, then the Performance targets with the ratios.
func printTable(w io.Writer, o options, m *machine, peers []*peer, res map[string]*measurement) {
	sum := map[string]*summary{}
	for name, mm := range res {
		sum[name] = summarize(mm)
	}
	fmt.Fprintf(w, "\n%s\nload average after: %s\n", m, m.loadAfter)
	fmt.Fprintf(w, "medians of %d rounds; throughput: wrk -t%d -c%d -d%v; steady rate: %d/s open loop for %v after %v warm-up\n",
		o.rounds, o.threads, o.conns, o.duration, o.rate, o.rateFor, o.warm)
	fmt.Fprint(w, "other: cores busy with anything but the run (other processes, hypervisor steal) during that median round\n")
	fmt.Fprintf(w, "ready: exec to the first 200 from the readiness path, median of %d starts\n", max(1, o.starts))
	fmt.Fprint(w, "targets: the median of the ratios taken round by round, between runs close in time\n\n")
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

	fmt.Fprintln(w, "\ntargets:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range targets(peers, res) {
		verdict := "met"
		switch {
		case t.info:
			verdict = "(no target)"
		case t.missing:
			verdict = "not measured"
		case !t.ok:
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.what, t.got, t.want, verdict)
	}
	tw.Flush()
}

// target is one of the Performance targets as measured.
type target struct {
	what, got, want string
	value           float64 // the ratio or figure, for README's tables across runs
	format          func(float64) string
	atMost          bool    // value must not exceed bound
	bound           float64 // the target; 0 with info
	shape           string  // the generated rules' shape it is about, if any
	kind            string  // what it measures, the same for every shape
	ok, missing     bool
	info            bool // a figure beside the targets, not one of them
}

func pct(r float64) string    { return fmt.Sprintf("%.0f%%", 100*r) }
func times(r float64) string  { return fmt.Sprintf("%.1f×", r) }
func times2(r float64) string { return fmt.Sprintf("%.2f×", r) }
func mib(kb float64) string   { return fmt.Sprintf("%.1f MiB", kb/1024) }
func msf(d float64) string    { return ms(time.Duration(d)) }

// Targets of README's Performance section.
const (
	minShare     = 0.9  // the full path's throughput to bare's, and each shape's to the example rules'
	minFlask     = 15   // the full path's throughput to Flask's
	maxP99       = 1.5  // p99 at the steady rate to bare's
	maxRSS       = 30e6 // bytes of peak RSS
	maxReady     = 50 * time.Millisecond
	maxReadyMany = 100 * time.Millisecond // with 1,000 rules
)

// targets compares the peers round by round — each round's figures were taken close in
// time — and reports the median of the rounds' ratios, with every round's.
func targets(peers []*peer, res map[string]*measurement) []target {
	bare, full, flask := res["bare"], res["reservist"], res["flask"]
	noHeadroom := res["reservist-gogc100"]
	rps := func(m *measurement) []float64 {
		if m == nil {
			return nil
		}
		var out []float64
		for _, w := range m.wrk {
			out = append(out, w.rps)
		}
		return out
	}
	p99 := func(m *measurement) []float64 {
		if m == nil {
			return nil
		}
		var out []float64
		for _, r := range m.rate {
			out = append(out, float64(r.p99))
		}
		return out
	}
	type compare struct {
		what, kind, shape string
		a, b              []float64
		bound             float64
		atMost            bool // the ratio must not exceed bound
		format            func(float64) string
		want              string
		info              bool
	}
	compares := []compare{
		{what: "full path throughput / bare", kind: "throughput / bare", a: rps(full), b: rps(bare), bound: minShare, format: pct, want: "≥ " + pct(minShare)},
		{what: "full path with GOGC=100 (no GC headroom) throughput / bare", kind: "GOGC=100 throughput / bare", a: rps(noHeadroom), b: rps(bare), format: pct, want: "-", info: true},
		{what: "full path throughput / Flask", kind: "throughput / Flask", a: rps(full), b: rps(flask), bound: minFlask, format: times, want: fmt.Sprintf("≥ %.0f×", float64(minFlask))},
		{what: "full path p99 / bare p99 at the steady rate", kind: "p99 / bare", a: p99(full), b: p99(bare), bound: maxP99, atMost: true, format: times2, want: fmt.Sprintf("≤ %.1f×", maxP99)},
	}
	var shaped []*peer
	for _, p := range peers {
		if p.shape == "" || res[p.name] == nil {
			continue
		}
		shaped = append(shaped, p)
		m := res[p.name]
		compares = append(compares,
			compare{what: p.shape + " rules throughput / example rules", kind: "throughput / example rules", shape: p.shape, a: rps(m), b: rps(full), bound: minShare, format: pct, want: "≥ " + pct(minShare)},
			compare{what: p.shape + " rules throughput / bare", kind: "throughput / bare", shape: p.shape, a: rps(m), b: rps(bare), format: pct, want: "-", info: true},
			compare{what: p.shape + " rules p99 / bare p99 at the steady rate", kind: "p99 / bare", shape: p.shape, a: p99(m), b: p99(bare), bound: maxP99, atMost: true, format: times2, want: fmt.Sprintf("≤ %.1f×", maxP99)})
	}
	var ts []target
	for _, c := range compares {
		ratios := pairedRatios(c.a, c.b)
		if len(ratios) == 0 {
			if !c.info {
				ts = append(ts, target{what: c.what, kind: c.kind, shape: c.shape, missing: true})
			}
			continue
		}
		m := median(ratios)
		each := make([]string, len(ratios))
		for i, r := range ratios {
			each[i] = c.format(r)
		}
		ok := m >= c.bound
		if c.atMost {
			ok = m <= c.bound
		}
		ts = append(ts, target{what: c.what, kind: c.kind, shape: c.shape, got: fmt.Sprintf("%s (rounds: %s)", c.format(m), strings.Join(each, " ")),
			want: c.want, value: m, format: c.format, atMost: c.atMost, bound: c.bound, ok: ok, info: c.info})
	}
	figure := func(name, shape string, m *measurement, ready time.Duration) {
		rss := float64(m.rssKB) * 1024
		ts = append(ts,
			target{what: name + " peak RSS", kind: "peak RSS", shape: shape, got: mib(float64(m.rssKB)), want: fmt.Sprintf("≤ %.0f MB (%s)", maxRSS/1e6, mib(maxRSS/1024)),
				value: float64(m.rssKB), format: mib, atMost: true, bound: maxRSS / 1024, ok: rss <= maxRSS},
			target{what: name + " start to first /readyz 200", kind: "start", shape: shape, got: ms(m.ready), want: "≤ " + ms(ready),
				value: float64(m.ready), format: msf, atMost: true, bound: float64(ready), ok: m.ready <= ready})
	}
	if full != nil {
		figure("full path", "", full, maxReady)
	}
	for _, p := range shaped {
		figure(p.shape+" rules", p.shape, res[p.name], maxReadyMany)
	}
	return ts
}

// pairedRatios divides a's figure by b's round by round.
func pairedRatios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// median is the middle value (the lower of the two middle ones for an even count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
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
