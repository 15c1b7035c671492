// Package cases reads golden-file cases (docs/cases.md): sample callbacks kept next to the rules,
// each with the decision it must get, and runs them against an engine.
package cases

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/reservist/reservist/rules"
)

// Case is one sample callback.
type Case struct {
	Name   string // the case file's path relative to the directory it was found under, without extension
	Path   string // the case file
	Golden string // its golden file: NAME.golden.json beside it
	Params url.Values
	// Warnings are what looks wrong in the file but leaves it a callback that can be
	// decided: a key of a .yaml case that is no callback parameter (a typo, most likely),
	// or a key given twice. Each is located in the file.
	Warnings []rules.Diagnostic
	// Err is why the file is not a case at all: it cannot be read, or it does not parse
	// (rules.Errors, located). Such a case fails without being decided.
	Err error
}

const goldenSuffix = ".golden.json"

// Load reads every *.yaml and *.form file under the directories as a case, sorted by path. A
// file that cannot be read or does not parse is still a case, with its Err, so that a run
// reports it and goes on with the others; an error is returned only for a directory that
// cannot be walked.
func Load(dirs ...string) ([]*Case, error) {
	var out []*Case
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			ext := filepath.Ext(path)
			if d.IsDir() || (ext != ".yaml" && ext != ".form") {
				return nil
			}
			c, err := LoadFile(path)
			if err != nil {
				c = newCase(path, nil)
				c.Err = err
			}
			if rel, err := filepath.Rel(dir, path); err == nil {
				c.Name = strings.TrimSuffix(filepath.ToSlash(rel), ext)
			}
			out = append(out, c)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// LoadFile reads one case file. An error that is about the file's content is rules.Errors,
// located in the file.
func LoadFile(path string) (*Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read case: %v", err)
	}
	params, warnings, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	c := newCase(path, params)
	c.Warnings = warnings
	return c, nil
}

func newCase(path string, params url.Values) *Case {
	ext := filepath.Ext(path)
	base := strings.TrimSuffix(path, ext)
	return &Case{Name: filepath.Base(base), Path: path, Golden: base + goldenSuffix, Params: params}
}

// Parse reads case data by the file's extension: .form is a raw form body as captured, .yaml
// a mapping of parameter names to values. It returns the parameters and the warnings about
// them; an error is rules.Errors, located in the file.
func Parse(path string, data []byte) (url.Values, []rules.Diagnostic, error) {
	switch filepath.Ext(path) {
	case ".form":
		v, err := parseForm(path, data)
		return v, nil, err
	case ".yaml":
		return parseYAML(path, data)
	}
	return nil, nil, located(path, 1, 1, "a case file ends in .yaml (parameters as a mapping) or .form (a raw form body)")
}

// located is an error about a case file at line:col.
func located(path string, line, col int, format string, args ...any) error {
	return rules.Errors{{File: path, Pos: rules.Pos{Line: line, Col: col}, Msg: fmt.Sprintf(format, args...)}}
}

// parseForm reads a raw form body. A bad escape is located at its %, a stray ; at itself.
func parseForm(path string, data []byte) (url.Values, error) {
	body := bytes.TrimSpace(data)
	v, err := url.ParseQuery(string(body))
	if err == nil {
		return v, nil
	}
	offset := bytes.Index(data, body) // where the body starts, past leading space
	at := badFormByte(body)
	if at < 0 {
		return nil, located(path, 1, 1, "not a form body (name=value&…): %v", err)
	}
	line, col := lineCol(data, offset+at)
	what := "a bad escape: % must be followed by two hex digits, as in %7B"
	if body[at] == ';' {
		what = "a ; between parameters: a form body separates them with &"
	}
	return nil, located(path, line, col, "not a form body: %s", what)
}

// badFormByte finds the first byte url.ParseQuery refuses: a % without two hex digits after
// it, or a ;. It returns -1 when it finds none.
func badFormByte(b []byte) int {
	isHex := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ';':
			return i
		case '%':
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return i
			}
		}
	}
	return -1
}

// lineCol is the 1-based line and column (in bytes) of offset in data.
func lineCol(data []byte, offset int) (int, int) {
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	return line, offset - (bytes.LastIndexByte(before, '\n') + 1) + 1
}

// yamlErrorLine is yaml.v3's syntax error, which has a line but no column.
var yamlErrorLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML reads a mapping of parameters. Values are scalars, except that any parameter may
// be written as a mapping or a list, which is sent as JSON (TaskAttributes and
// WorkerAttributes are JSON strings in a real callback). A key that is no callback parameter
// (CallbackParams), or one given twice, is a warning.
func parseYAML(path string, data []byte) (url.Values, []rules.Diagnostic, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlErrorLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, nil, located(path, line, 1, "invalid YAML: %s", m[2])
		}
		return nil, nil, located(path, 1, 1, "invalid YAML: %s", msg)
	}
	if len(doc.Content) == 0 {
		return url.Values{}, nil, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, nil, located(path, m.Line, m.Column, "a case is a mapping of callback parameters (TaskAttributes: …, WorkerAttributes: …)")
	}
	params := url.Values{}
	var warnings []rules.Diagnostic
	warn := func(n *yaml.Node, format string, args ...any) {
		warnings = append(warnings, rules.Diagnostic{File: path, Pos: rules.Pos{Line: n.Line, Col: n.Column}, Msg: fmt.Sprintf(format, args...), Warning: true})
	}
	var errs rules.Errors
	fail := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, rules.Diagnostic{File: path, Pos: rules.Pos{Line: n.Line, Col: n.Column}, Msg: fmt.Sprintf(format, args...)})
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			fail(k, "a parameter's name is a plain word, like TaskAttributes")
			continue
		}
		if !IsCallbackParam(k.Value) {
			warn(k, "%s", unknownParam(k.Value))
		}
		if params.Has(k.Value) {
			warn(k, "%s is given twice; the last one counts", k.Value)
		}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				params.Set(k.Value, "")
			} else {
				params.Set(k.Value, v.Value)
			}
		case yaml.MappingNode, yaml.SequenceNode:
			var x any
			if err := v.Decode(&x); err != nil {
				fail(v, "%s: %v", k.Value, err)
				continue
			}
			js, err := json.Marshal(x)
			if err != nil {
				fail(v, "%s cannot be sent as JSON: %v", k.Value, err)
				continue
			}
			params.Set(k.Value, string(js))
		default:
			fail(v, "%s must be a value, a mapping or a list", k.Value)
		}
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return params, warnings, nil
}
