package cases

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"sort"

	"gopkg.in/yaml.v3"
)

// attributeParams are the parameters that hold JSON objects, which a .yaml case writes as
// mappings.
var attributeParams = []string{"TaskAttributes", "WorkerAttributes"}

// FormatYAML writes a callback's parameters as a .yaml case: the callback parameters in the
// order of CallbackParams, then any others by name; TaskAttributes and WorkerAttributes as
// YAML mappings when they are JSON objects; every other value as text that reads back as
// itself. Parse reads what it writes as the same callback (attributes equal as JSON).
func FormatYAML(params url.Values) ([]byte, error) {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	order := func(name string) int {
		if i := slices.Index(callbackParamNames, name); i >= 0 {
			return i
		}
		return len(callbackParamNames)
	}
	sort.Slice(names, func(i, j int) bool {
		if oi, oj := order(names[i]), order(names[j]); oi != oj {
			return oi < oj
		}
		return names[i] < names[j]
	})
	doc := &yaml.Node{Kind: yaml.MappingNode}
	for _, name := range names {
		v := params.Get(name)
		value := textNode(v)
		if slices.Contains(attributeParams, name) {
			if m := jsonObjectNode(v); m != nil {
				value = m
			}
		}
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, value)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// textNode is a parameter's text as a scalar that a .yaml case reads back as that text: plain
// where YAML keeps it as written (600, true, a timestamp: a case takes a scalar's text), quoted
// where it would not (null, ~, an empty value, text with a colon or a leading dash).
func textNode(v string) *yaml.Node {
	var probe yaml.Node
	if err := yaml.Unmarshal([]byte(v), &probe); err == nil && len(probe.Content) == 1 {
		if n := probe.Content[0]; n.Kind == yaml.ScalarNode && n.Style == 0 && n.Value == v && n.Tag != "!!null" {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: n.Tag, Value: v}
		}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

// jsonObjectNode reads JSON text that is an object as a YAML node in block style, keys in
// the order written; nil when it is not a JSON object.
func jsonObjectNode(v string) *yaml.Node {
	t := bytes.TrimSpace([]byte(v))
	if len(t) == 0 || t[0] != '{' {
		return nil
	}
	var probe any
	if yaml.Unmarshal(t, &probe) != nil {
		return nil
	}
	if _, ok := probe.(map[string]any); !ok {
		return nil
	}
	// YAML is a superset of JSON, nearly: its parser keeps the keys' order and the values'
	// types. What it would read otherwise than JSON does stays text.
	var n yaml.Node
	if err := yaml.Unmarshal(t, &n); err != nil || len(n.Content) != 1 || n.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	block(n.Content[0])
	if !sameJSON(n.Content[0], t) {
		return nil
	}
	return n.Content[0]
}

// sameJSON reports whether a YAML node, read the way a .yaml case reads it (and sent as
// JSON), means what the JSON text does.
func sameJSON(n *yaml.Node, text []byte) bool {
	var fromYAML any
	if n.Decode(&fromYAML) != nil {
		return false
	}
	sent, err := json.Marshal(fromYAML)
	if err != nil {
		return false
	}
	var a, b any
	if json.Unmarshal(sent, &a) != nil || json.Unmarshal(text, &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// block writes a node and everything under it in YAML's block style, as people write
// cases; an empty mapping or list stays {} or [].
func block(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		block(c)
	}
}
