package config

import (
	"sort"

	"go.yaml.in/yaml/v3"
)

// This file exports the small helpers other packages need to report YAML
// findings the way radgate.yaml does (package routing walks its own node
// tree and positions every error with them).

// YAMLError turns a yaml.v3 error about data (the file name holds) into a
// positioned Error: a syntax error at its line:col, with the bracket left
// open or the offending ':' pointed at (see yamlError).
func YAMLError(name string, data []byte, err error) Error { return yamlError(name, data, err) }

// Describe names what a node holds, for messages such as
// `expected a list, got "CR"`: "a mapping", "a list", or the quoted scalar.
// A null scalar (a key with nothing after it) is "nothing".
func Describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && (n.Value == "" || n.Value == "~" || n.Value == "null") {
		return "nothing"
	}
	return describe(n)
}

// SortErrors orders findings by file, then line, then column, keeping the
// order of findings at the same position.
func SortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}
