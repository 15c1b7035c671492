package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// printReadme prints the figures of every run as the Markdown tables of README's
// Performance section: each figure is the median of the runs' medians, with the runs' spread
// (min–max) when there are several, else the rounds'.
func printReadme(w io.Writer, o options, m *machine, peers []*peer, runs []map[string]*measurement) {
	n := len(runs)
	var tools []string
	for _, t := range []string{m.goVersion, m.wrk, m.flask} {
		if t != "" {
			tools = append(tools, t)
		}
	}
	fmt.Fprintf(w, "\n## For README\n\n%d run(s) of %d rounds on %d cores (%s), %s; load average %s at the start, %s at the end.\n",
		n, o.rounds, m.cores, m.cpu, strings.Join(tools, ", "), m.loadBefore, m.loadAfter)
	spreadOf := "the rounds'"
	if n > 1 {
		spreadOf = "the runs'"
	}
	fmt.Fprintf(w, "Figures are medians; in brackets, %s lowest and highest.\n\n", spreadOf)

	fmt.Fprintf(w, "| peer | req/s at %d connections | server CPU per callback | p50 / p99 at %d | p50 / p99 at %s/s | peak RSS | start → /readyz 200 |\n", o.conns, o.conns, thousands(o.rate))
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, p := range peers {
		var ss []*summary
		for _, res := range runs {
			if s := summarize(res[p.name]); s != nil {
				ss = append(ss, s)
			}
		}
		if len(ss) == 0 {
			continue
		}
		row := []string{p.label}
		if ws := pick(ss, func(s *summary) *wrkResult { return s.wrk }); len(ws) > 0 {
			rps := values(ws, func(x *wrkResult) float64 { return x.rps })
			lo, hi := slices.Min(rps), slices.Max(rps)
			if n == 1 {
				lo, hi = ss[0].rpsMin, ss[0].rpsMax
			}
			row = append(row,
				thousands(int(median(rps)))+spread(func(f float64) string { return thousands(int(f)) }, lo, hi),
				us(time.Duration(median(values(ws, func(x *wrkResult) float64 { return float64(x.cpuPerReq) })))),
				msPair(median(values(ws, func(x *wrkResult) float64 { return float64(x.p50) })), median(values(ws, func(x *wrkResult) float64 { return float64(x.p99) }))))
		} else {
			row = append(row, "-", "-", "-")
		}
		if rs := pick(ss, func(s *summary) *rateResult { return s.rate }); len(rs) > 0 {
			p99s := values(rs, func(x *rateResult) float64 { return float64(x.p99) })
			cell := msPair(median(values(rs, func(x *rateResult) float64 { return float64(x.p50) })), median(p99s))
			if n > 1 {
				cell += spread(msf, slices.Min(p99s), slices.Max(p99s))
			}
			row = append(row, cell)
		} else if slices.ContainsFunc(ss, func(s *summary) bool { return s.overloaded }) {
			row = append(row, fmt.Sprintf("cannot sustain %s/s", thousands(o.rate)))
		} else {
			row = append(row, "-")
		}
		rss := values(ss, func(s *summary) float64 { return float64(s.rssKB) })
		ready := values(ss, func(s *summary) float64 { return float64(s.ready) })
		row = append(row, mib(slices.Max(rss)), ms(time.Duration(median(ready))))
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}

	// Each run's targets, gathered by what they measure.
	perRun := make([][]target, n)
	for i, res := range runs {
		perRun[i] = targets(peers, res)
	}
	gather := func(kind, shape string) (vals []float64, t target, found bool) {
		for _, ts := range perRun {
			for _, x := range ts {
				if x.kind == kind && x.shape == shape && !x.missing {
					vals, t, found = append(vals, x.value), x, true
				}
			}
		}
		return vals, t, found
	}
	cell := func(vals []float64, t target) string {
		s := t.format(median(vals))
		if n > 1 {
			s += spread(t.format, slices.Min(vals), slices.Max(vals))
		}
		return s
	}

	var shaped []*peer
	for _, p := range peers {
		if p.shape != "" {
			shaped = append(shaped, p)
		}
	}
	if len(shaped) > 0 {
		fmt.Fprintf(w, "\n| %s rules of each shape, last matches | leads with | throughput / example rules | throughput / bare | p99 at %s/s / bare |\n", thousands(o.rules), thousands(o.rate))
		fmt.Fprintln(w, "|---|---|---|---|---|")
		for _, p := range shaped {
			row := []string{p.shape, shapeAbout(p.shape)}
			for _, kind := range []string{"throughput / example rules", "throughput / bare", "p99 / bare"} {
				if vals, t, ok := gather(kind, p.shape); ok {
					row = append(row, cell(vals, t))
				} else {
					row = append(row, "-")
				}
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}

	fmt.Fprintln(w, "\n| target | result |\n|---|---|")
	verdict := func(vals []float64, t target) string {
		v := median(vals)
		if t.atMost && v <= t.bound || !t.atMost && v >= t.bound {
			return "met"
		}
		return "**missed**"
	}
	row := func(what string, parts []string, ok string) {
		if len(parts) > 0 {
			fmt.Fprintf(w, "| %s | %s: %s |\n", what, ok, strings.Join(parts, "; "))
		}
	}
	// report gives the example rules' figure and, over the shapes, their range and the one
	// furthest from the target.
	report := func(what, kind string, withFull, withShapes bool) {
		var parts []string
		ok := "met"
		if withFull {
			if vals, t, found := gather(kind, ""); found {
				parts = append(parts, "example rules "+cell(vals, t))
				if verdict(vals, t) != "met" {
					ok = "**missed**"
				}
			}
		}
		var meds, worst []float64
		var worstName string
		var last target
		for _, p := range shaped {
			vals, t, found := gather(kind, p.shape)
			if !found || !withShapes {
				continue
			}
			v := median(vals)
			meds, last = append(meds, v), t
			if worst == nil || t.atMost && v > median(worst) || !t.atMost && v < median(worst) {
				worst, worstName = vals, p.shape
			}
			if verdict(vals, t) != "met" {
				ok = "**missed**"
			}
		}
		if len(meds) > 1 {
			r := strings.Trim(spread(last.format, slices.Min(meds), slices.Max(meds)), " ()")
			if r == "" {
				r = last.format(meds[0])
			}
			parts = append(parts, "the shapes "+r)
		}
		if worst != nil {
			parts = append(parts, "furthest: "+worstName+" "+cell(worst, last))
		}
		row(what, parts, ok)
	}
	report(fmt.Sprintf("full path throughput ≥ %s of bare", pct(minShare)), "throughput / bare", true, false)
	if vals, t, found := gather("throughput / Flask", ""); found {
		fmt.Fprintf(w, "| ≥ %.0f× the Flask handler | %s: %s |\n", float64(minFlask), verdict(vals, t), cell(vals, t))
	}
	report(fmt.Sprintf("every shape at %s rules ≥ %s of the example rules", thousands(o.rules), pct(minShare)), "throughput / example rules", false, true)
	report(fmt.Sprintf("p99 at %s/s ≤ %.1f× bare", thousands(o.rate), maxP99), "p99 / bare", true, true)
	report(fmt.Sprintf("peak RSS ≤ %.0f MB", maxRSS/1e6), "peak RSS", true, true)
	report(fmt.Sprintf("`/readyz` ≤ %s after start (%s with %s rules)", ms(maxReady), ms(maxReadyMany), thousands(o.rules)), "start", true, true)
}

// spread writes " (lo–hi)", with the unit once, or nothing when lo and hi are the same.
func spread(format func(float64) string, lo, hi float64) string {
	a, b := format(lo), format(hi)
	if a == b {
		return ""
	}
	unit := strings.TrimLeft(b, "0123456789.,-")
	return fmt.Sprintf(" (%s–%s)", strings.TrimSuffix(a, unit), b)
}

func shapeAbout(name string) string {
	for _, s := range shapes {
		if s.name == name {
			return s.about
		}
	}
	return ""
}

// pick returns the non-nil results of the summaries.
func pick[T any](ss []*summary, f func(*summary) *T) []*T {
	var out []*T
	for _, s := range ss {
		if x := f(s); x != nil {
			out = append(out, x)
		}
	}
	return out
}

func values[T any](xs []T, f func(T) float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// msPair writes two durations as "0.65 / 1.41 ms".
func msPair(a, b float64) string {
	return strings.TrimSuffix(ms(time.Duration(a)), " ms") + " / " + ms(time.Duration(b))
}
