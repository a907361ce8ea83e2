package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	goccy "github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// yaml.v3 walks radgate's files into nodes with good positions, but the
// position of its syntax errors is the line of the construct that was open
// (a flow list, a mapping) counted from 0, with no column: an unclosed '['
// on line 2 is reported as "line 1". goccy/go-yaml's parser positions its
// syntax errors at the token it stopped on, line and column. So a file
// yaml.v3 refuses is parsed again with goccy only to position the error;
// everything that parses is still read by yaml.v3 alone.

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error about data into a positioned Error: a
// syntax error at the line:col where goccy/go-yaml finds it, worded for an
// engineer; anything else ("line 3: …") at the line yaml.v3 gives.
func yamlError(name string, data []byte, err error) Error {
	if e, ok := syntaxError(name, data); ok {
		return e
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = strings.TrimSpace(msg)
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Error{File: name, Line: line, Message: m[2]}
	}
	return Error{File: name, Message: msg}
}

// syntaxError parses data with goccy/go-yaml and returns its syntax error,
// positioned; ok is false when goccy finds none (the two parsers disagree
// on a few corner cases: then yaml.v3's own words stand) or fails in a way
// that names no token.
func syntaxError(name string, data []byte) (e Error, ok bool) {
	defer func() {
		if recover() != nil { // a parser bug must not hide the file's error
			ok = false
		}
	}()
	_, err := parser.ParseBytes(data, 0)
	var ye goccy.Error
	if err == nil || !errors.As(err, &ye) || ye.GetToken() == nil {
		return Error{}, false
	}
	tk := ye.GetToken()
	e = Error{File: name, Line: tk.Position.Line, Column: tk.Position.Column, Message: ye.GetMessage()}
	switch msg := ye.GetMessage(); {
	case msg == "',' or ']' must be specified", msg == "',' or '}' must be specified":
		// goccy stops at the token after the unclosed list or mapping,
		// often the next line's key: point at the bracket left open.
		closer := byte('}')
		if strings.Contains(msg, "']'") {
			closer = ']'
		}
		if open := openerBefore(data, tk, closer); open != nil {
			e.Line, e.Column = open.Position.Line, open.Position.Column
			e.Message = fmt.Sprintf("'%s' is not closed (expected ',' or '%c' before %d:%d)",
				open.Value, closer, tk.Position.Line, tk.Position.Column)
		}
	case msg == "sequence end token ']' not found":
		e.Message = "'[' is not closed (no ']' before the end of the file)"
	case msg == "could not find flow mapping end token '}'":
		e.Message = "'{' is not closed (no '}' before the end of the file)"
	case msg == "mapping value is not allowed in this context":
		// goccy points at the value before the offending ':' (a key
		// indented under a key that already has a value): point at it.
		if colon := nextOfType(data, tk, token.MappingValueType); colon != nil {
			e.Line, e.Column = colon.Position.Line, colon.Position.Column
		}
		e.Message = "mapping values are not allowed in this context (is this line indented too far?)"
	case msg == "value is not allowed in this context":
		if startsLine(data, tk) {
			e.Message = fmt.Sprintf("%q is not allowed here: check its indentation", tk.Value)
			if !lineStartsAt(data, tk.Position.Line, tk.Position.Column) {
				e.Message = fmt.Sprintf("%q is indented to column %d, where no key or list item above it starts", tk.Value, tk.Position.Column)
			}
		}
	case strings.HasPrefix(msg, "could not find end character of "):
		kind := "double"
		if strings.Contains(msg, "single-quoted") {
			kind = "single"
		}
		e.Message = fmt.Sprintf("this %s-quoted string is never closed", kind)
	case strings.Contains(msg, "'\t'"):
		e.Message = "found a tab character: YAML indents with spaces only"
	}
	return e, true
}

// tokens lexes data as goccy does.
func tokens(data []byte) token.Tokens { return lexer.Tokenize(string(data)) }

func before(a, b *token.Token) bool {
	if a.Position.Line != b.Position.Line {
		return a.Position.Line < b.Position.Line
	}
	return a.Position.Column < b.Position.Column
}

// openerBefore finds the innermost '[' or '{' still open at tk whose closer
// is closer.
func openerBefore(data []byte, tk *token.Token, closer byte) *token.Token {
	var open []*token.Token
	for _, t := range tokens(data) {
		if !before(t, tk) {
			break
		}
		switch t.Type {
		case token.SequenceStartType, token.MappingStartType:
			open = append(open, t)
		case token.SequenceEndType, token.MappingEndType:
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		}
	}
	want := token.SequenceStartType
	if closer == '}' {
		want = token.MappingStartType
	}
	for i := len(open) - 1; i >= 0; i-- {
		if open[i].Type == want {
			return open[i]
		}
	}
	return nil
}

// nextOfType finds the first token of type typ after tk.
func nextOfType(data []byte, tk *token.Token, typ token.Type) *token.Token {
	for _, t := range tokens(data) {
		if t.Type == typ && before(tk, t) {
			return t
		}
	}
	return nil
}

// startsLine reports whether only spaces come before tk on its line.
func startsLine(data []byte, tk *token.Token) bool {
	lines := strings.Split(string(data), "\n")
	if tk.Position.Line < 1 || tk.Position.Line > len(lines) {
		return false
	}
	line := []rune(lines[tk.Position.Line-1])
	if tk.Position.Column < 1 || tk.Position.Column > len(line)+1 {
		return false
	}
	return strings.TrimLeft(string(line[:tk.Position.Column-1]), " ") == ""
}

// lineStartsAt reports whether a key or list item of a line before line
// starts at column col (1-based).
func lineStartsAt(data []byte, line, col int) bool {
	for i, l := range strings.Split(string(data), "\n") {
		if i+1 >= line {
			break
		}
		r := []rune(l)
		c := 0
		for {
			for c < len(r) && r[c] == ' ' {
				c++
			}
			if c >= len(r) || r[c] == '#' {
				break
			}
			if c+1 == col {
				return true
			}
			if r[c] != '-' || (c+1 < len(r) && r[c+1] != ' ') {
				break
			}
			c++ // a list item's dash: its content starts a key too
		}
	}
	return false
}
