package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// source is where a Config was loaded from, kept so that checks made after
// loading (destination types, which the config package does not know) can
// report at file:line:col too.
type source struct {
	file string
	root *yaml.Node
}

// ErrorAt returns an Error about the key at the dotted path ("destinations.
// ris.address"), positioned at that key's value in the file, else at its
// nearest ancestor the file has; a Config that was not loaded from a file
// gives an Error without a position.
func (c Config) ErrorAt(path, msg string) Error {
	e := Error{File: c.src.file, Message: fmt.Sprintf("%s: %s", path, msg)}
	if e.File == "" {
		e.File = "radgate.yaml"
	}
	for p := path; p != ""; p = p[:max(strings.LastIndex(p, "."), 0)] {
		if n := nodeAt(c.src.root, p); n != nil {
			e.Line, e.Column = n.Line, n.Column
			break
		}
	}
	return e
}

// KeysAt lists the keys the file sets in the mapping at the dotted path, in
// file order (nil when the file has no mapping there).
func (c Config) KeysAt(path string) []string {
	n := nodeAt(c.src.root, path)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	keys := make([]string, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i].Value)
	}
	return keys
}
