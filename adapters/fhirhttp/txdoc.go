package fhirhttp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// txDoc is a transaction Bundle as the fhir package's builders write it,
// opened up so the sink can adapt it before posting: reference the
// engine's Device by id, correct a report in place, add revision
// identifiers. Numbers stay json.Number, so a decimal keeps its digits
// ("91.0").
type txDoc struct {
	ResourceType string     `json:"resourceType"`
	Type         string     `json:"type"`
	Entry        []*txEntry `json:"entry"`

	// held are the attachments' base64 texts set aside while the
	// document is open (holdAttachments); marshal puts them back.
	held [][]byte
}

type txEntry struct {
	FullURL  string         `json:"fullUrl,omitempty"`
	Resource map[string]any `json:"resource,omitempty"`
	Request  map[string]any `json:"request,omitempty"`
}

// openTx opens a built transaction for editing. The attachments' base64
// (a Media's picture, a report's PDF: most of the bytes) is set aside
// first and written back by marshal as it was — no edit reads it, and
// decoding it into the maps and encoding it again cost more than the rest
// of the delivery's JSON.
func openTx(b []byte) (*txDoc, error) { return openTxHolding(b, true) }

func openTxHolding(b []byte, hold bool) (*txDoc, error) {
	var held [][]byte
	if hold {
		b, held = holdAttachments(b)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var doc txDoc
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("reading the built transaction: %w", err)
	}
	doc.held = held
	return &doc, nil
}

func (d *txDoc) marshal() ([]byte, error) {
	out, err := json.Marshal(d)
	if err != nil || len(d.held) == 0 {
		return out, err
	}
	// Every placeholder gets its attachment back, and so does every copy
	// an edit made of one, as the map would have had it.
	size := len(out)
	for _, h := range d.held {
		size += len(h)
	}
	full := make([]byte, 0, size)
	rest := out
	for {
		at := bytes.Index(rest, []byte(heldPrefix))
		if at < 0 {
			break
		}
		digits := rest[at+len(heldPrefix):]
		n := 0
		for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
			n++
		}
		i, err := strconv.Atoi(string(digits[:n]))
		if err != nil || n >= len(digits) || digits[n] != '"' || i >= len(d.held) {
			return nil, fmt.Errorf("writing the transaction: a set-aside attachment's placeholder is damaged")
		}
		full = append(append(full, rest[:at]...), d.held[i]...)
		rest = digits[n+1:]
	}
	return append(full, rest...), nil
}

// minHeld is the shortest attachment worth setting aside.
const minHeld = 1024

// heldPlaceholder is the JSON string standing for held attachment i: its
// text as written in the bundle is also how encoding/json writes it back
// (a NUL is written \u0000), and no FHIR value holds a NUL.
func heldPlaceholder(i int) string { return heldPrefix + strconv.Itoa(i) + `"` }

const heldPrefix = `"\u0000radgate-attachment-`

// holdAttachments replaces each "data" value of at least minHeld base64
// characters by a placeholder and returns the bundle and the values (with
// their quotes). A bundle that already holds the placeholders' text is
// left as it is.
func holdAttachments(b []byte) ([]byte, [][]byte) {
	const key = `"data":"`
	if bytes.Contains(b, []byte(`radgate-attachment-`)) || !bytes.Contains(b, []byte(key)) {
		return b, nil
	}
	var held [][]byte
	out := make([]byte, 0, len(b))
	rest := b
	for {
		at := bytes.Index(rest, []byte(key))
		if at < 0 {
			break
		}
		start := at + len(key) - 1 // the opening quote
		v := rest[start+1:]
		n := 0
		for n < len(v) && base64Chars[v[n]] {
			n++
		}
		end := start + 1 + n // the closing quote, if the value is base64
		if n < minHeld || n == len(v) || v[n] != '"' {
			out = append(out, rest[:start]...)
			rest = rest[start:]
			continue
		}
		out = append(append(out, rest[:start]...), heldPlaceholder(len(held))...)
		held = append(held, rest[start:end+1])
		rest = rest[end+1:]
	}
	return append(out, rest...), held
}

// base64Chars marks the bytes of standard base64 text.
var base64Chars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") {
		t[c] = true
	}
	return t
}()

// find returns the first entry of a resource type, or nil.
func (d *txDoc) find(resourceType string) *txEntry {
	for _, e := range d.Entry {
		if e.resourceType() == resourceType {
			return e
		}
	}
	return nil
}

// remove drops e and makes every reference to its fullUrl point at ref.
func (d *txDoc) remove(e *txEntry, ref string) {
	out := d.Entry[:0]
	for _, x := range d.Entry {
		if x != e {
			out = append(out, x)
		}
	}
	d.Entry = out
	for _, x := range d.Entry {
		replaceRefs(x.Resource, e.FullURL, ref)
	}
}

// replaceRefs sets every "reference" equal to from to to, anywhere in v.
func replaceRefs(v any, from, to string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "reference" && s == from {
				v[k] = to
				continue
			}
			replaceRefs(x, from, to)
		}
	case []any:
		for _, x := range v {
			replaceRefs(x, from, to)
		}
	}
}

func (e *txEntry) resourceType() string { return str(e.Resource["resourceType"]) }

// putAt turns e into an update of the existing resource ref ("Type/id"),
// guarded by its version when version is set.
func (e *txEntry) putAt(ref, version string) {
	_, id, _ := strings.Cut(ref, "/")
	e.Resource["id"] = id
	e.Request = map[string]any{"method": "PUT", "url": ref}
	if version != "" {
		e.Request["ifMatch"] = `W/"` + version + `"`
	}
}

// putByIdentifier turns e's conditional create into a conditional update
// on the same identifier: the resource is corrected in place, or created
// when there is none.
func (e *txEntry) putByIdentifier() {
	if cond := str(e.Request["ifNoneExist"]); cond != "" {
		e.Request = map[string]any{"method": "PUT", "url": e.resourceType() + "?" + cond}
	}
}

// addIdentifier appends an identifier to a resource.
func addIdentifier(res map[string]any, system, value string) {
	ids, _ := res["identifier"].([]any)
	res["identifier"] = append(ids, map[string]any{"system": system, "value": value})
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// stored is what the sink reads of a resource on the server.
type stored struct {
	ref, version, lastUpdated, status string
	body                              map[string]any
}

func readStored(raw json.RawMessage) (*stored, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	s := &stored{ref: str(m["resourceType"]) + "/" + str(m["id"]), status: str(m["status"]), body: m}
	if meta, ok := m["meta"].(map[string]any); ok {
		s.version, s.lastUpdated = str(meta["versionId"]), str(meta["lastUpdated"])
	}
	return s, nil
}

// revision is the result revision a stored report carries (its identifier
// of system revisionSystem, "<result-id>/r<N>"); 1 without one.
func (s *stored) revision() int {
	rev := 1
	ids, _ := s.body["identifier"].([]any)
	for _, x := range ids {
		id, _ := x.(map[string]any)
		if str(id["system"]) != revisionSystem {
			continue
		}
		v := str(id["value"])
		if i := strings.LastIndex(v, "/r"); i >= 0 {
			if n, err := strconv.Atoi(v[i+2:]); err == nil && n > rev {
				rev = n
			}
		}
	}
	return rev
}

// refs lists the literal references at key (an array of references, or of
// objects whose field sub is one: DiagnosticReport.media[].link).
func (s *stored) refs(key, sub string) []string {
	var out []string
	list, _ := s.body[key].([]any)
	for _, x := range list {
		m, _ := x.(map[string]any)
		if sub != "" {
			m, _ = m[sub].(map[string]any)
		}
		if r := str(m["reference"]); strings.Count(r, "/") == 1 {
			out = append(out, r)
		}
	}
	return out
}

// oldest picks the resource written first: the lowest meta.lastUpdated,
// then the lowest id.
func oldest(list []*stored) *stored {
	var best *stored
	var bestAt time.Time
	for _, s := range list {
		at, _ := time.Parse(time.RFC3339Nano, s.lastUpdated)
		if best == nil || at.Before(bestAt) || (at.Equal(bestAt) && s.ref < best.ref) {
			best, bestAt = s, at
		}
	}
	return best
}
