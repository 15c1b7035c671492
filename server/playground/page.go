package playground

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/server/internal/respond"
)

var page = template.Must(template.New("index.html").Funcs(template.FuncMap{
	"short": func(rev string) string {
		if len(rev) > 12 {
			return rev[:12]
		}
		return rev
	},
	"when": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"outcomes": func(c outcomes.Counts) []outcomeCount {
		var out []outcomeCount
		for _, o := range []outcomeCount{{outcomes.Accepted, c.Accepted}, {outcomes.Rejected, c.Rejected}, {outcomes.Timeout, c.Timeout}, {outcomes.Canceled, c.Canceled}, {outcomes.Rescinded, c.Rescinded}} {
			if o.N > 0 {
				out = append(out, o)
			}
		}
		return out
	},
}).ParseFS(assets, "assets/index.html"))

// pageData is what the page shows when it loads; everything after that comes from the JSON
// endpoints.
type pageData struct {
	Path          string
	Revision      string
	LoadedAt      time.Time
	Stale         bool
	LastError     []string
	LastAttemptAt time.Time
	Rules         []ruleRow
	// OutcomesOn says that reservation outcomes are counted (Event callbacks are on).
	OutcomesOn bool

	Recent    []RecentCallback
	RecentOn  bool
	RecentOff string
	RecentMax int

	// Source is the rules file as it is on disk now, to start a draft from; SourceNote
	// says when that is not what serves.
	Source     string
	SourceNote string
	CaseDirs   []string
}

type ruleRow struct {
	Name, Description, When, Do, Via string
	Delay                            time.Duration
	Matches                          uint64
	Outcomes                         outcomes.Counts // since the rules were loaded
}

// outcomeCount is one outcome with its count, as the rules table lists it.
type outcomeCount struct {
	Outcome string
	N       uint64
}

// maxSource bounds the rules file put into the page; a bigger one would not be a draft
// /draft accepts anyway.
const maxSource = maxBody

// handlePage renders the playground.
func handlePage(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur, st := o.Rules.Current(), o.Rules.Status()
		set := cur.Engine.Set()
		d := pageData{
			Path: st.Path, Revision: cur.Revision(), LoadedAt: cur.LoadedAt,
			Stale: st.Stale, LastAttemptAt: st.LastAttemptAt,
			RecentOn: o.Recent != nil, RecentOff: o.RecentOff, RecentMax: RecentMax,
			CaseDirs: o.CaseDirs, OutcomesOn: o.Outcomes != nil,
		}
		if st.LastError != nil {
			d.LastError = rules.ErrorLines(st.LastError)
		}
		for _, rule := range set.Rules {
			d.Rules = append(d.Rules, ruleRow{
				Name: rule.Name, Description: rule.Description, When: rule.When,
				Do: rule.Do, Via: string(rule.Via), Delay: rule.Delay, Matches: cur.Matches(rule.Name),
			})
		}
		d.Rules = append(d.Rules,
			ruleRow{Name: "default", Description: "no rule matched", Do: set.Default.Do, Via: string(set.Default.Via), Delay: set.Default.Delay, Matches: cur.Matches("default")},
			ruleRow{Name: "on_error", Description: "the callback could not be decided", Do: set.OnError.Do, Via: string(set.OnError.Via), Delay: set.OnError.Delay, Matches: cur.Matches("on_error")},
		)
		if o.Outcomes != nil {
			counts := o.Outcomes.SinceLoad(cur)
			for i := range d.Rules {
				d.Rules[i].Outcomes = counts[d.Rules[i].Name]
			}
		}
		if o.Recent != nil {
			d.Recent = o.Recent.List()
		}
		d.Source, d.SourceNote = source(st.Path, cur.Revision())

		var b bytes.Buffer
		if err := page.Execute(&b, d); err != nil {
			o.Logger.Error("playground page failed to render", "error", err)
			respond.Err(w, respond.ErrInternal)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(b.Len()))
		h.Set("Cache-Control", "no-store") // it lists callbacks' attributes
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
		w.WriteHeader(http.StatusOK)
		w.Write(b.Bytes())
	})
}

// source reads the rules file to start a draft from, and says when it is not what serves
// (a reload failed, or the file changed since the last one).
func source(path, revision string) (text, note string) {
	f, err := os.Open(path)
	if err != nil {
		return "", "The rules file cannot be read now (" + err.Error() + "); paste a draft."
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSource+1))
	if err != nil {
		return "", "The rules file cannot be read now; paste a draft."
	}
	if len(data) > maxSource {
		return "", "The rules file is over 1 MiB, more than a draft may be; paste a smaller one."
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != revision {
		note = "This is the file on disk now, which is not what serves (its last reload failed, or it changed since)."
	}
	return string(data), note
}
