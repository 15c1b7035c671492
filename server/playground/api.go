package playground

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/server/internal/respond"
)

// callbackInput is a callback as the page or a script sends it: a raw form body, or the
// parameters by name.
type callbackInput struct {
	// Form is a raw form body, as TaskRouter sends it and as a .form case holds it.
	Form *string `json:"form"`
	// Params are the parameters by name, as a .yaml case holds them: a string as it is,
	// a number or boolean as its text, an object or list as its JSON (so TaskAttributes
	// may be written as an object), null as "".
	Params map[string]json.RawMessage `json:"params"`
	// At is the time to decide the callback at, in place of its Timestamp: an RFC 3339 time
	// or Unix epoch seconds, as a string or a number.
	At json.RawMessage `json:"at"`
}

func (c *callbackInput) given() bool { return c.Form != nil || c.Params != nil }

// Where the time a callback is decided at came from, as a decision says it.
const (
	fromAt        = "at"        // the request's "at"
	fromTimestamp = "timestamp" // the callback's Timestamp
	fromArrival   = "arrival"   // the clock: the callback has no usable Timestamp
)

// values returns the callback's parameters, with "at" as its Timestamp when given, and where
// the time it is decided at comes from.
func (c *callbackInput) values() (url.Values, string, error) {
	v, err := c.params()
	if err != nil {
		return nil, "", err
	}
	if len(c.At) > 0 && string(c.At) != "null" {
		at, err := paramValue(c.At)
		if err == nil && at != "" {
			_, err = engine.ParseTime(at)
		} else if err == nil {
			err = errors.New("it is empty")
		}
		if err != nil {
			return nil, "", respond.BadRequest("at must be the time to decide at, an RFC 3339 time like 2026-03-09T09:15:00-04:00 or Unix epoch seconds: %v", err)
		}
		v.Set(engine.ParamTimestamp, at)
		return v, fromAt, nil
	}
	if _, err := engine.Timestamp(v); err == nil {
		return v, fromTimestamp, nil
	}
	return v, fromArrival, nil
}

// params returns the callback's parameters as given.
func (c *callbackInput) params() (url.Values, error) {
	switch {
	case c.Form != nil && c.Params != nil:
		return nil, respond.BadRequest("give the callback as form or as params, not both")
	case c.Form != nil:
		v, err := url.ParseQuery(strings.TrimSpace(*c.Form))
		if err != nil {
			return nil, respond.BadRequest("form is not a form body (name=value&…): %v", err)
		}
		return v, nil
	case c.Params != nil:
		v := make(url.Values, len(c.Params))
		for k, raw := range c.Params {
			s, err := paramValue(raw)
			if err != nil {
				return nil, respond.BadRequest("params.%s: %v", k, err)
			}
			v.Set(k, s)
		}
		return v, nil
	}
	return nil, respond.BadRequest("no callback: give form (a raw form body) or params (an object of callback parameters)")
}

// paramValue reads one of params' values as the text of a form parameter.
func paramValue(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "", errors.New("no value")
	case raw[0] == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case raw[0] == '{' || raw[0] == '[':
		var b bytes.Buffer
		err := json.Compact(&b, raw)
		return b.String(), err
	case string(raw) == "null":
		return "", nil
	}
	return string(raw), nil // a number or a boolean, as written
}

// decision is how an engine decision is shown: the same fields as a golden file (rule,
// response, rest), what the answer is in words, and the trace of every rule tried.
type decision struct {
	Rule        string    `json:"rule"`
	Instruction string    `json:"instruction"`
	Via         rules.Via `json:"via"`
	// Response is the answer TaskRouter gets, as JSON; ResponseText is the same answer byte
	// for byte.
	Response     json.RawMessage `json:"response"`
	ResponseText string          `json:"response_text"`
	REST         *cases.REST     `json:"rest"`            // the REST call it makes, or null
	Error        string          `json:"error,omitempty"` // why on_error decided
	Trace        []engine.Step   `json:"trace"`
	// At is the callback's time, in the rules' timezone (what `now` is); AtFrom says where it
	// came from: "at", "timestamp" or "arrival".
	At     string `json:"at"`
	AtFrom string `json:"at_from"`
}

func newDecision(d *engine.Decision, from string) decision {
	g := cases.FromDecision(d)
	out := decision{
		At:           d.At.Format(time.RFC3339Nano),
		AtFrom:       from,
		Rule:         d.Rule,
		Instruction:  d.Instruction(),
		Via:          d.Via(),
		Response:     g.Response,
		ResponseText: string(d.Response()),
		REST:         g.REST,
		Trace:        d.Trace,
	}
	if d.Err != nil {
		out.Error = d.Err.Error()
	}
	if out.Trace == nil {
		out.Trace = []engine.Step{} // on_error before any rule: an empty list, not null
	}
	return out
}

// handleDecide decides a callback with the active rules, as a callback would be, without
// counting it, logging it or sending anything. Like a callback, one without "at" or a usable
// Timestamp is decided at the time it arrives.
func handleDecide(rs reload.Source, now func() time.Time) http.Handler {
	type request struct {
		callbackInput
	}
	type response struct {
		Revision string `json:"revision"`
		decision
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := readJSON(r, &req, "form, params, at"); err != nil {
			respond.Err(w, err)
			return
		}
		params, from, err := req.values()
		if err != nil {
			respond.Err(w, err)
			return
		}
		cur := rs.Current()
		respond.JSON(w, http.StatusOK, response{Revision: cur.Revision(), decision: newDecision(cur.Engine.Explain(params, now()), from)})
	})
}

// diagnostic is one problem in a draft, where it is.
type diagnostic struct {
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	Warning bool   `json:"warning,omitempty"`
}

func diagnostics(ds []rules.Diagnostic) (lines []string, out []diagnostic) {
	lines, out = []string{}, []diagnostic{}
	for _, d := range ds {
		lines = append(lines, d.String())
		out = append(out, diagnostic{Line: d.Pos.Line, Col: d.Pos.Col, Message: d.Msg, Warning: d.Warning})
	}
	return lines, out
}

// comparison is one callback decided by the active rules and by the draft.
type comparison struct {
	Active  decision `json:"active"`
	Draft   decision `json:"draft"`
	Changed bool     `json:"changed"`
	Diff    string   `json:"diff,omitempty"` // - active, + draft
}

// caseResult is one golden case decided by the active rules and by the draft.
type caseResult struct {
	Name    string        `json:"name"`
	Path    string        `json:"path"`
	Active  *cases.Golden `json:"active"` // null when the case cannot be decided: see golden_error
	Draft   *cases.Golden `json:"draft"`
	Changed bool          `json:"changed"`
	Diff    string        `json:"diff,omitempty"` // - active, + draft
	// Golden is how the draft fares against the case's golden file: "pass", "fail" (see
	// GoldenDiff, - golden + draft) or "error" (see GoldenError: no golden file, say).
	Golden      string `json:"golden"`
	GoldenDiff  string `json:"golden_diff,omitempty"`
	GoldenError string `json:"golden_error,omitempty"`
}

// caseReport is the draft tried against the --reload-cases golden cases.
type caseReport struct {
	Dirs    []string     `json:"dirs"`
	Error   string       `json:"error,omitempty"` // the cases could not be read
	Total   int          `json:"total"`
	Changed int          `json:"changed"` // cases the draft decides differently from the active rules
	Failing int          `json:"failing"` // cases whose golden file the draft does not match: a reload would be refused
	Results []caseResult `json:"results"`
}

// handleDraft tries a draft of rules.yaml: every error with its line and column, or what it
// would decide for the callback given and for the golden cases, beside what the active
// rules decide. Nothing is swapped in.
func handleDraft(rs reload.Source, dirs []string, slots chan struct{}, now func() time.Time) http.Handler {
	type request struct {
		Rules *string `json:"rules"`
		callbackInput
	}
	type invalid struct {
		Error       string       `json:"error"`
		Errors      []string     `json:"errors"` // FILE:LINE:COL: message, as reservist check prints them
		Diagnostics []diagnostic `json:"diagnostics"`
	}
	type valid struct {
		Revision       string       `json:"revision"`
		ActiveRevision string       `json:"active_revision"`
		Warnings       []string     `json:"warnings"`
		Diagnostics    []diagnostic `json:"diagnostics"`
		Callback       *comparison  `json:"callback,omitempty"` // when a callback was sent
		Cases          *caseReport  `json:"cases,omitempty"`    // when --reload-cases is set
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := readJSON(r, &req, "rules, form, params, at"); err != nil {
			respond.Err(w, err)
			return
		}
		if req.Rules == nil {
			respond.Err(w, respond.BadRequest("rules is required: the draft rules.yaml, as a string"))
			return
		}
		var params url.Values
		var from string
		switch {
		case req.given():
			var err error
			if params, from, err = req.values(); err != nil {
				respond.Err(w, err)
				return
			}
		case len(req.At) > 0:
			respond.Err(w, respond.BadRequest("at is the time to decide the callback at; give the callback too (form or params)"))
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-r.Context().Done():
			return // the caller left while other drafts were tried
		}

		// Errors name the draft after the file it would replace: the lines are the draft's.
		name := filepath.Base(rs.Status().Path)
		if name == "." || name == string(filepath.Separator) {
			name = "rules.yaml"
		}
		set, err := rules.Parse(name, []byte(*req.Rules))
		if err != nil {
			var errs rules.Errors
			if !errors.As(err, &errs) {
				errs = rules.Errors{{File: name, Pos: rules.Pos{Line: 1, Col: 1}, Msg: err.Error()}}
			}
			lines, ds := diagnostics(errs)
			respond.JSON(w, http.StatusUnprocessableEntity, invalid{
				Error:  fmt.Sprintf("the draft is not valid (%d %s); nothing was changed", len(errs), plural(len(errs), "error", "errors")),
				Errors: lines, Diagnostics: ds,
			})
			return
		}
		draft := engine.New(set)
		cur := rs.Current()
		out := valid{Revision: set.Revision, ActiveRevision: cur.Revision()}
		out.Warnings, out.Diagnostics = diagnostics(set.Warnings)
		if params != nil {
			arrived := now()
			a, d := cur.Engine.Explain(params, arrived), draft.Explain(params, arrived)
			c := &comparison{Active: newDecision(a, from), Draft: newDecision(d, from)}
			c.Diff = diff(cases.FromDecision(a), cases.FromDecision(d))
			c.Changed = c.Diff != ""
			out.Callback = c
		}
		if len(dirs) > 0 {
			out.Cases = compareCases(cur.Engine, draft, dirs)
		}
		respond.JSON(w, http.StatusOK, out)
	})
}

// compareCases decides every golden case with both engines.
func compareCases(active, draft *engine.Engine, dirs []string) *caseReport {
	rep := &caseReport{Dirs: dirs, Results: []caseResult{}}
	cs, err := cases.Load(dirs...)
	if err != nil {
		rep.Error = fmt.Sprintf("the --reload-cases cannot be read: %v", err)
		return rep
	}
	before, after := cases.Run(active, cs, nil), cases.Run(draft, cs, nil)
	for i, a := range before.Results {
		d := after.Results[i]
		res := caseResult{Name: a.Case.Name, Path: a.Case.Path, Active: a.Got, Draft: d.Got}
		switch {
		case a.Got != nil && d.Got != nil:
			res.Diff = diff(a.Got, d.Got)
		case d.Got == nil && a.Got != nil: // the draft reads the time and the case does not pin it
			res.Diff = "the draft does not decide this case: " + d.Err.Error()
		case a.Got == nil && d.Got != nil:
			res.Diff = "the active rules do not decide this case: " + a.Err.Error()
		}
		res.Changed = res.Diff != ""
		switch {
		case d.Err != nil:
			res.Golden, res.GoldenError = "error", d.Err.Error()
		case d.Diff != "":
			res.Golden, res.GoldenDiff = "fail", d.Diff
		default:
			res.Golden = "pass"
		}
		if res.Changed {
			rep.Changed++
		}
		if !d.Passed() {
			rep.Failing++
		}
		rep.Results = append(rep.Results, res)
	}
	rep.Total = len(rep.Results)
	return rep
}

// diff compares two decisions by meaning, as reservist test does: "" when they agree.
func diff(a, b *cases.Golden) string {
	d, err := cases.Diff(a, b)
	if err != nil {
		return err.Error() // cannot happen: both come from the engine
	}
	return d
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// readJSON reads a body of at most maxBody bytes that is one JSON object into v. fields
// lists v's fields for the message about an unknown one.
func readJSON(r *http.Request, v any, fields string) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		// Also what keeps another site's page from posting here: a cross-site request
		// cannot send this content type without a CORS preflight, which is not answered.
		return errNotJSON
	}
	if r.ContentLength > maxBody {
		return errTooLarge
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return respond.BadRequest("the body could not be read")
	}
	if len(data) > maxBody {
		return errTooLarge
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return respond.BadRequest("%s", jsonProblem(err, fields))
	}
	if _, err := dec.Token(); err != io.EOF {
		return respond.BadRequest("the body must be one JSON object, with nothing after it")
	}
	return nil
}

// fieldTypes says what each request field must be, for messages about the wrong type.
var fieldTypes = map[string]string{
	"form":   "a string: a raw form body",
	"params": "an object of callback parameters",
	"at":     "a string: an RFC 3339 time or Unix epoch seconds",
	"rules":  "a string: the draft rules.yaml",
}

// jsonProblem says what is wrong with a request body in the caller's terms, not Go's.
func jsonProblem(err error, fields string) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("the body is not valid JSON: %v (at byte %d)", syn, syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is not valid JSON: it ends too early"
	case errors.As(err, &typ):
		// Field is the Go path (callbackInput.form); the JSON name is the part we know.
		for _, field := range strings.Split(typ.Field, ".") {
			if want, ok := fieldTypes[field]; ok {
				return fmt.Sprintf("%s must be %s, not a JSON %s", field, want, typ.Value)
			}
		}
		return fmt.Sprintf("a field has the wrong type: a JSON %s", typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Sprintf("%s; the fields are %s", strings.TrimPrefix(err.Error(), "json: "), fields)
	}
	return "the body is not valid JSON"
}
