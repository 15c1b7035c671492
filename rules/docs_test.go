package rules

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// docPath is the reference the key tables, the instruction table and the environment are
// documented in; these tests keep it from falling behind them.
const docPath = "../docs/rules.md"

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section returns the text under the heading line (exactly as written, like "## Rules") up to
// the next heading of the same or a higher level.
func section(t *testing.T, doc, heading string) string {
	t.Helper()
	level := strings.IndexByte(heading, ' ')
	lines := strings.Split(doc, "\n")
	start := slices.Index(lines, heading)
	if start < 0 {
		t.Fatalf("%s has no heading %q", docPath, heading)
	}
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		if n := strings.IndexByte(lines[i], ' '); n > 0 && n <= level && strings.Trim(lines[i][:n], "#") == "" {
			end = i
			break
		}
	}
	return strings.Join(lines[start+1:end], "\n")
}

// tableRows returns the rows of the tables in text whose first cell is a name in backticks,
// in order, each as its trimmed cells, the name without its backticks first.
func tableRows(text string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		cells[0] = strings.Trim(cells[0], "`")
		rows = append(rows, cells)
	}
	return rows
}

func firstCells(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r[0]
	}
	return out
}

// Every key table of keys.go has its table in the doc, with the same keys in the same order
// and the same required ones.
func TestDocNamesEveryKey(t *testing.T) {
	doc := readDoc(t)
	tables := []struct {
		heading string
		keys    []Key
	}{
		{"## Top-level keys", TopKeys()},
		{"## Rules", RuleKeys()},
		{"## default and on_error", ActionKeys()},
		{"### schedules", ScheduleKeys()},
	}
	for _, tt := range tables {
		rows := tableRows(section(t, doc, tt.heading))
		if got, want := firstCells(rows), keyNames(tt.keys); !slices.Equal(got, want) {
			t.Errorf("%s %q lists keys %q; want %q (the key table of rules/keys.go)", docPath, tt.heading, got, want)
			continue
		}
		for i, k := range tt.keys {
			if got, want := strings.HasPrefix(rows[i][1], "yes"), k.Required; got != want {
				t.Errorf("%s %q: key %s required = %v; want %v", docPath, tt.heading, k.Name, got, want)
			}
		}
	}
}

// kindWords are the doc's names of the field kinds, the kind column of the instruction tables.
var kindWords = map[Kind]string{
	String:  "string",
	Address: "address",
	URL:     "URL",
	SID:     "SID",
	Int:     "integer",
	Bool:    "boolean",
	Enum:    "enum",
	List:    "list",
}

// Every instruction has its section, in table order, with its fixed REST parameters and a row
// per field: kind, required, bounds or values, REST parameter name.
func TestDocNamesEveryInstruction(t *testing.T) {
	doc := readDoc(t)
	for _, do := range DoValues() {
		if !strings.Contains(section(t, doc, "## do"), "`"+do+"`") {
			t.Errorf("%s \"## do\" does not name %s", docPath, do)
		}
	}
	all := section(t, doc, "## Instructions")
	last := -1
	for _, in := range Instructions {
		heading := "### `" + in.Name + "`"
		if at := strings.Index(all, "\n"+heading+"\n"); at < last {
			t.Errorf("%s: %q comes before the instruction above it in rules.Instructions (or is missing)", docPath, heading)
		} else {
			last = at
		}
		text := section(t, doc, heading)
		for _, kv := range in.Fixed {
			if fixed := "`" + kv[0] + "=" + kv[1] + "`"; !strings.Contains(text, "Always sent: "+fixed) && !strings.Contains(text, ", "+fixed) {
				t.Errorf("%s %q does not say it always sends %s", docPath, heading, fixed)
			}
		}
		rows := tableRows(text)
		if got, want := firstCells(rows), in.FieldNames(); !slices.Equal(got, want) {
			t.Errorf("%s %q lists fields %q; want %q (rules.Instructions)", docPath, heading, got, want)
			continue
		}
		for i, f := range in.Fields {
			row := rows[i]
			if len(row) != 5 {
				t.Errorf("%s %q: row %s has %d cells; want 5 (field, kind, required, values, REST parameter)", docPath, heading, f.Name, len(row))
				continue
			}
			kind, required, values, rest := row[1], row[2], row[3], row[4]
			if want := kindWords[f.Kind]; kind != want {
				t.Errorf("%s %q: %s kind = %q; want %q", docPath, heading, f.Name, kind, want)
			}
			if got := strings.HasPrefix(required, "yes"); got != f.Required {
				t.Errorf("%s %q: %s required = %v; want %v", docPath, heading, f.Name, got, f.Required)
			}
			if want := "`" + f.REST + "`"; rest != want {
				t.Errorf("%s %q: %s REST parameter = %s; want %s", docPath, heading, f.Name, rest, want)
			}
			switch f.Kind {
			case Int:
				if want := fmt.Sprintf("%d–%d", f.Min, f.Max); !strings.Contains(values, want) {
					t.Errorf("%s %q: %s values = %q; want the bounds %s", docPath, heading, f.Name, values, want)
				}
			case SID:
				if want := "`" + f.Prefix + "…`"; !strings.Contains(values, want) {
					t.Errorf("%s %q: %s values = %q; want the prefix %s", docPath, heading, f.Name, values, want)
				}
			case Enum, List:
				for _, v := range f.Enum {
					if !strings.Contains(values, "`"+v+"`") {
						t.Errorf("%s %q: %s values = %q; want %s among them", docPath, heading, f.Name, values, v)
					}
				}
			}
		}
	}
}

// envNames lists every name an expression can read, as expr sees them: task.sid, vars, ….
func envNames(typ reflect.Type, prefix string) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := prefix + f.Tag.Get("expr")
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
			out = append(out, envNames(f.Type, name+".")...)
			continue
		}
		out = append(out, name)
	}
	return out
}

// Every name of the expression environment has its row, and no row names what is not there.
func TestDocNamesEveryEnvName(t *testing.T) {
	rows := tableRows(section(t, readDoc(t), "### The expression environment"))
	got := firstCells(rows)
	want := envNames(reflect.TypeFor[Env](), "")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s \"### The expression environment\" lists %q; want %q (rules.Env)", docPath, got, want)
	}
}

// The expression length bound the doc states is the one the parser applies.
func TestDocStatesExprLimit(t *testing.T) {
	text := section(t, readDoc(t), "## Limits")
	n := fmt.Sprint(maxExprLen)
	want := n[:len(n)-3] + "," + n[len(n)-3:] + " bytes"
	if !strings.Contains(text, want) {
		t.Errorf("%s \"## Limits\" does not say %s, the bound of one expression (maxExprLen)", docPath, want)
	}
}
