package cases

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/rules"
)

// Golden is the decision a case must get, as kept in NAME.golden.json.
type Golden struct {
	Rule     string          `json:"rule"`
	Response json.RawMessage `json:"response"`
	REST     *REST           `json:"rest"`
}

// REST is the Reservations REST call a decision makes.
type REST struct {
	Delay  string         `json:"delay"`
	Params map[string]any `json:"params"` // a string, or a list of strings for a repeated parameter
}

// FromDecision writes a decision in golden form.
func FromDecision(d *engine.Decision) *Golden {
	g := &Golden{Rule: d.Rule, Response: json.RawMessage(d.Response())}
	if d.REST() {
		g.REST = &REST{Delay: d.Delay().String(), Params: map[string]any{}}
		for k, vs := range d.Params().Form() {
			if len(vs) == 1 {
				g.REST.Params[k] = vs[0]
			} else {
				g.REST.Params[k] = vs
			}
		}
	}
	return g
}

// Marshal formats a golden file: indented, keys in a stable order, a final newline.
func (g *Golden) Marshal() []byte {
	var resp any
	if err := json.Unmarshal(g.Response, &resp); err != nil {
		resp = string(g.Response)
	}
	out := struct {
		Rule     string `json:"rule"`
		Response any    `json:"response"`
		REST     *REST  `json:"rest"`
	}{g.Rule, resp, g.REST}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		panic(err) // only strings, maps and lists: cannot fail
	}
	return b.Bytes()
}

// ReadGolden reads a golden file.
func ReadGolden(path string) (*Golden, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var g Golden
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("%s: not a golden file (want {\"rule\", \"response\", \"rest\"}): %v", path, err)
	}
	if len(g.Response) == 0 {
		return nil, fmt.Errorf("%s: golden file has no response", path)
	}
	return &g, nil
}

// decision is a golden decision in a form where equal meaning is equal value: JSON parsed,
// durations parsed, one-item lists as plain strings.
type decision struct {
	Rule     string
	Response any
	REST     *decisionREST
}

type decisionREST struct {
	Delay  time.Duration
	Params map[string]any
}

func (g *Golden) decision() (decision, error) {
	c := decision{Rule: g.Rule}
	if err := json.Unmarshal(g.Response, &c.Response); err != nil {
		return c, fmt.Errorf("response is not JSON: %v", err)
	}
	if g.REST != nil {
		d, err := time.ParseDuration(g.REST.Delay)
		if err != nil {
			return c, fmt.Errorf("rest.delay %q is not a duration like 2s", g.REST.Delay)
		}
		c.REST = &decisionREST{Delay: d, Params: map[string]any{}}
		for k, v := range g.REST.Params {
			switch x := v.(type) {
			case []any:
				if len(x) == 1 {
					c.REST.Params[k] = fmt.Sprint(x[0])
					continue
				}
				items := make([]any, len(x))
				for i, e := range x {
					items[i] = fmt.Sprint(e)
				}
				c.REST.Params[k] = items
			case []string:
				if len(x) == 1 {
					c.REST.Params[k] = x[0]
					continue
				}
				items := make([]any, len(x))
				for i, e := range x {
					items[i] = e
				}
				c.REST.Params[k] = items
			default:
				c.REST.Params[k] = fmt.Sprint(x)
			}
		}
	}
	return c, nil
}

// Diff compares two golden decisions by meaning and returns a readable difference
// (- want, + got), or "" if they agree.
func Diff(want, got *Golden) (string, error) {
	w, err := want.decision()
	if err != nil {
		return "", err
	}
	g, err := got.decision()
	if err != nil {
		return "", err
	}
	return cmp.Diff(w, g), nil
}

// Result is the outcome of one case.
type Result struct {
	Case     *Case
	Decision *engine.Decision // nil when the case cannot be decided as it is (see Err)
	Got      *Golden          // nil with Decision
	Want     *Golden          // nil when the golden file is missing or unreadable
	Diff     string           // - want, + got; empty when the case passes
	// Err says why the case fails other than by its decision: it has no usable Timestamp
	// while the rules read the time (it is not decided then), or its golden file cannot be
	// read.
	Err error
}

// Passed reports whether the case got its golden decision.
func (r *Result) Passed() bool { return r.Err == nil && r.Want != nil && r.Diff == "" }

// Report is the outcome of a run.
type Report struct {
	Results        []*Result
	Passed, Failed int
	Unreached      []string // rules no case reached, in file order
}

// Run decides every case (those whose name matches filter, when it is not nil) with e and
// compares each decision with its golden file. A case is decided at its own Timestamp and
// never at the time it is run: under rules that read the time, a case without a usable
// Timestamp fails undecided, saying what to add.
func Run(e *engine.Engine, cs []*Case, filter *regexp.Regexp) *Report {
	rep := &Report{}
	reached := map[string]bool{}
	for _, c := range cs {
		if filter != nil && !filter.MatchString(c.Name) {
			continue
		}
		if err := Pinned(e.Set(), c); err != nil {
			rep.Failed++
			rep.Results = append(rep.Results, &Result{Case: c, Err: err})
			continue
		}
		d := e.Explain(c.Params, time.Time{}) // no arrival time: only the case's own
		reached[d.Rule] = true
		r := &Result{Case: c, Decision: d, Got: FromDecision(d)}
		r.Want, r.Err = ReadGolden(c.Golden)
		if errors.Is(r.Err, fs.ErrNotExist) {
			r.Err = fmt.Errorf("no golden file %s; run reservist test --update to write it", c.Golden)
		}
		if r.Err == nil {
			r.Diff, r.Err = Diff(r.Want, r.Got)
		}
		if r.Passed() {
			rep.Passed++
		} else {
			rep.Failed++
		}
		rep.Results = append(rep.Results, r)
	}
	for _, rule := range e.Set().Rules {
		if !reached[rule.Name] {
			rep.Unreached = append(rep.Unreached, rule.Name)
		}
	}
	return rep
}

// Update writes the golden file of every result whose decision differs from it (or that has
// none) and returns the files written. A case that could not be decided gets none: the
// error names each, with what it lacks.
func (rep *Report) Update() ([]string, error) {
	var written []string
	var undecided []error
	for _, r := range rep.Results {
		if r.Passed() {
			continue
		}
		if r.Got == nil {
			undecided = append(undecided, fmt.Errorf("case %s (%s) is not decided: %w", r.Case.Name, r.Case.Path, r.Err))
			continue
		}
		if err := os.WriteFile(r.Case.Golden, r.Got.Marshal(), 0o644); err != nil {
			return written, err
		}
		written = append(written, r.Case.Golden)
	}
	sort.Strings(written)
	return written, errors.Join(undecided...)
}

// Pinned says why a case cannot be decided under set as it is, or returns nil: when the
// rules read the time, the case must carry a usable Timestamp, so that its decision does
// not depend on when the case is run.
func Pinned(set *rules.Set, c *Case) error {
	if !set.ReadsTime {
		return nil
	}
	_, err := engine.Timestamp(c.Params)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrNoTimestamp):
		example := "Timestamp: 2026-03-09T09:15:00-04:00"
		if strings.HasSuffix(c.Path, ".form") {
			example = "&Timestamp=1773062100"
		}
		return fmt.Errorf("the case has no Timestamp, and %s reads the time (now, open); add one to pin the callback's time, like %s (RFC 3339, or Unix epoch seconds as TaskRouter sends it)", set.Path, example)
	}
	return fmt.Errorf("the case's Timestamp %v; %s reads the time, so the case needs one that pins it", err, set.Path)
}

// Print writes the report as `reservist test` shows it: a block per failing case with its
// diff, the rules no case reached, and the closing line `N passed, N failed`.
func (rep *Report) Print(w io.Writer) {
	for _, r := range rep.Results {
		if r.Passed() {
			continue
		}
		fmt.Fprintf(w, "--- FAIL: %s (%s)\n", r.Case.Name, r.Case.Path)
		if r.Err != nil {
			fmt.Fprintf(w, "    %v\n", r.Err)
			continue
		}
		fmt.Fprintf(w, "    decision differs from %s (- want, + got):\n", r.Case.Golden)
		for _, line := range strings.Split(strings.TrimRight(r.Diff, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
	if len(rep.Unreached) > 0 {
		fmt.Fprintf(w, "unreached: %s\n", strings.Join(rep.Unreached, ", "))
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", rep.Passed, rep.Failed)
}

// Err summarises the failing cases as one error, or returns nil when all passed.
func (rep *Report) Err() error {
	if rep.Failed == 0 {
		return nil
	}
	var names []string
	for _, r := range rep.Results {
		if !r.Passed() {
			names = append(names, r.Case.Name)
		}
	}
	return fmt.Errorf("%d of %d cases fail: %s", rep.Failed, rep.Passed+rep.Failed, strings.Join(names, ", "))
}
