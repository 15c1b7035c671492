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
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Case is one sample callback.
type Case struct {
	Name   string // the case file's path relative to the directory it was found under, without extension
	Path   string // the case file
	Golden string // its golden file: NAME.golden.json beside it
	Params url.Values
}

const goldenSuffix = ".golden.json"

// Load reads every *.yaml and *.form file under the directories as a case, sorted by name.
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
				return err
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

// LoadFile reads one case file.
func LoadFile(path string) (*Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	params, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	ext := filepath.Ext(path)
	base := strings.TrimSuffix(path, ext)
	return &Case{
		Name:   filepath.Base(base),
		Path:   path,
		Golden: base + goldenSuffix,
		Params: params,
	}, nil
}

// Parse reads case data by the file's extension: .form is a raw form body as captured, .yaml
// a mapping of parameter names to values.
func Parse(path string, data []byte) (url.Values, error) {
	switch filepath.Ext(path) {
	case ".form":
		v, err := url.ParseQuery(string(bytes.TrimSpace(data)))
		if err != nil {
			return nil, fmt.Errorf("%s: not a form body: %v", path, err)
		}
		return v, nil
	case ".yaml":
		return parseYAML(path, data)
	}
	return nil, fmt.Errorf("%s: a case file ends in .yaml or .form", path)
}

// parseYAML reads a mapping of parameters. Values are scalars, except that any parameter may
// be written as a mapping or a list, which is sent as JSON (TaskAttributes and
// WorkerAttributes are JSON strings in a real callback).
func parseYAML(path string, data []byte) (url.Values, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(doc.Content) == 0 {
		return url.Values{}, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d:%d: a case is a mapping of callback parameters (TaskAttributes: …, WorkerAttributes: …)", path, m.Line, m.Column)
	}
	params := url.Values{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
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
				return nil, fmt.Errorf("%s:%d:%d: %s: %v", path, v.Line, v.Column, k.Value, err)
			}
			js, err := json.Marshal(x)
			if err != nil {
				return nil, fmt.Errorf("%s:%d:%d: %s cannot be sent as JSON: %v", path, v.Line, v.Column, k.Value, err)
			}
			params.Set(k.Value, string(js))
		default:
			return nil, fmt.Errorf("%s:%d:%d: %s must be a value", path, v.Line, v.Column, k.Value)
		}
	}
	return params, nil
}
