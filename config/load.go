package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one finding in a configuration file, positioned at file:line:col.
type Error struct {
	File    string
	Line    int
	Column  int
	Message string
}

func (e Error) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Message)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Message)
	}
}

// Errors is every finding in a file; Load returns all of them at once.
type Errors []Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// LoadFile reads and validates a radgate.yaml.
func LoadFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	return Load(path, b)
}

// Load parses data (named name in errors) on top of Default(). It rejects
// unknown keys and wrong types, and collects every error with its position.
func Load(name string, data []byte) (Config, error) {
	cfg := Default()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil // an empty file means all defaults
		}
		return cfg, Errors{yamlError(name, data, err)}
	}
	if len(doc.Content) == 0 {
		return cfg, nil
	}
	root := doc.Content[0]
	cfg.src = source{file: name, root: root}
	var errs Errors
	checkKeys(name, root, reflect.TypeOf(cfg), "", &errs)
	if len(errs) == 0 {
		// Every key and leaf checked out: the whole decode cannot fail on
		// them, so any error left is reported as yaml.v3 words it.
		if err := root.Decode(&cfg); err != nil {
			errs = append(errs, yamlError(name, data, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, validate(name, root, &cfg)...)
		errs = append(errs, validateRetention(name, root, &cfg)...)
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool {
			if errs[i].Line != errs[j].Line {
				return errs[i].Line < errs[j].Line
			}
			return errs[i].Column < errs[j].Column
		})
		return cfg, errs
	}
	return cfg, nil
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// checkKeys walks a node against the Go type it decodes into. It reports
// every key a struct does not have (naming the keys it does) and every leaf
// that does not decode, each at its own line:col, so one run finds them all.
func checkKeys(name string, n *yaml.Node, t reflect.Type, path string, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	leaf := func() {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			*errs = append(*errs, Error{File: name, Line: n.Line, Column: n.Column,
				Message: fmt.Sprintf("%s: %s", where(path), leafMessage(err, t, n))})
		}
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		leaf()
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, Error{File: name, Line: n.Line, Column: n.Column,
				Message: fmt.Sprintf("%s: expected a mapping of keys, got %s", where(path), describe(n))})
			return
		}
		fields := map[string]reflect.Type{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
			known = append(known, tag)
		}
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, Error{File: name, Line: k.Line, Column: k.Column,
					Message: fmt.Sprintf("unknown key %q in %s (known: %s)", k.Value, where(path), strings.Join(known, ", "))})
				continue
			}
			if duplicateKey(name, k, seen, path, errs) {
				continue
			}
			checkKeys(name, v, ft, join(path, k.Value), errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, Error{File: name, Line: n.Line, Column: n.Column,
				Message: fmt.Sprintf("%s: expected a list, got %s", where(path), describe(n))})
			return
		}
		for i, c := range n.Content {
			checkKeys(name, c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, Error{File: name, Line: n.Line, Column: n.Column,
				Message: fmt.Sprintf("%s: expected a mapping, got %s", where(path), describe(n))})
			return
		}
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if duplicateKey(name, n.Content[i], seen, path, errs) {
				continue
			}
			checkKeys(name, n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), errs)
		}
	default:
		leaf()
	}
}

// duplicateKey reports key k of the mapping at path when seen already holds
// it (yaml.v3 parses a mapping with a key twice into nodes without a word;
// only decoding refuses it, with a line and no column).
func duplicateKey(name string, k *yaml.Node, seen map[string]*yaml.Node, path string, errs *Errors) bool {
	if first, dup := seen[k.Value]; dup {
		*errs = append(*errs, Error{File: name, Line: k.Line, Column: k.Column,
			Message: fmt.Sprintf("%s: key %q appears twice (first at line %d)", where(path), k.Value, first.Line)})
		return true
	}
	seen[k.Value] = k
	return false
}

// leafMessage words a scalar decode failure for an engineer.
func leafMessage(err error, t reflect.Type, n *yaml.Node) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error() // our own UnmarshalYAML wording
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("expected an integer, got %s", describe(n))
	case reflect.Float32, reflect.Float64:
		return fmt.Sprintf("expected a number, got %s", describe(n))
	case reflect.Bool:
		return fmt.Sprintf("expected true or false, got %s", describe(n))
	case reflect.String:
		return fmt.Sprintf("expected a string, got %s", describe(n))
	}
	return strings.TrimPrefix(te.Error(), "yaml: unmarshal errors:\n  ")
}

// describe names what a node holds, for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

func where(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nodeAt finds the value node at a dotted path, for positioning errors.
func nodeAt(root *yaml.Node, path string) *yaml.Node {
	n := root
	for _, key := range strings.Split(path, ".") {
		if n != nil && n.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
			continue
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// validate checks values that decode but make no sense.
func validate(name string, root *yaml.Node, c *Config) Errors {
	var errs Errors
	// badAt reports msg about path at the node of the first of at that the
	// file has, or else at the nearest ancestor of path the file has.
	badAt := func(at []string, path, msg string) {
		e := Error{File: name, Message: fmt.Sprintf("%s: %s", path, msg)}
		for p := path; p != ""; p = p[:max(strings.LastIndex(p, "."), 0)] {
			at = append(at, p)
		}
		for _, p := range at {
			if n := nodeAt(root, p); n != nil {
				e.Line, e.Column = n.Line, n.Column
				break
			}
		}
		errs = append(errs, e)
	}
	bad := func(path, msg string) { badAt(nil, path, msg) }
	checkURL := func(path, raw string, schemes ...string) {
		if raw == "" {
			return
		}
		for _, part := range strings.Split(raw, ",") {
			u, err := url.Parse(strings.TrimSpace(part))
			if err != nil || u.Host == "" || !contains(schemes, u.Scheme) {
				bad(path, fmt.Sprintf("%q is not a URL with scheme %s and a host", part, strings.Join(schemes, " or ")))
			}
		}
	}
	if c.Listen == "" {
		bad("listen", "must not be empty (e.g. 127.0.0.1:8080)")
	}
	checkURL("nats.url", c.NATS.URL, "nats", "tls")
	switch {
	case c.NATS.EmbeddedListen == "" && c.NATS.URL == "":
		bad("nats.embedded_listen", "must not be empty when nats.url is (e.g. 127.0.0.1:4222)")
	case c.NATS.EmbeddedListen != "":
		if _, _, err := c.NATS.EmbeddedAddr(); err != nil {
			bad("nats.embedded_listen", err.Error())
		}
	}
	switch r := c.NATS.Replicas; {
	case r != 1 && r != 3 && r != 5:
		bad("nats.replicas", fmt.Sprintf("%d: must be 1, 3 or 5 (an odd number of copies, for a quorum)", r))
	case r > 1 && c.NATS.URL == "":
		bad("nats.replicas", fmt.Sprintf("%d needs nats.url to name a JetStream cluster of at least %d servers: the embedded server is a single server", r, r))
	}
	if r := c.NATS.PublishRetry.D(); r < 0 || r > 45*time.Second {
		bad("nats.publish_retry", fmt.Sprintf("%v: must be 0 to 45s (an intake waits for it within its 60 s answer)", r))
	}
	checkURL("pacs.dicomweb_url", c.PACS.DICOMwebURL, "http", "https")
	checkURL("fhir.base_url", c.FHIR.BaseURL, "http", "https")
	checkURL("fhir.subscription_endpoint", c.FHIR.SubscriptionEndpoint, "http", "https")
	if c.PACS.DICOMwebURL == "" {
		bad("pacs.dicomweb_url", "must be set")
	}
	if c.FHIR.BaseURL == "" {
		bad("fhir.base_url", "must be set")
	}
	if c.PACS.PasswordEnv != "" && c.PACS.PasswordFile != "" {
		bad("pacs.password_env", "set password_env or password_file, not both")
	}
	if c.Inference.Workers < 1 {
		bad("inference.workers", fmt.Sprintf("must be at least 1, got %d", c.Inference.Workers))
	}
	if c.Inference.Threads < 0 {
		bad("inference.threads", fmt.Sprintf("must be 0 (the default: %d per engine) or more, got %d", DefaultInferenceThreads, c.Inference.Threads))
	}
	if len(c.Engines) == 0 {
		bad("engines", "must name at least one engine")
	}
	if c.Orders.RetryMin <= 0 || c.Orders.RetryMax < c.Orders.RetryMin {
		bad("orders.retry_min", "must be positive and not above orders.retry_max")
	}
	if c.Orders.StudyWaitWindow <= 0 {
		bad("orders.study_wait_window", "must be positive")
	}
	for i, o := range c.Orders.StudyWaitOverrides {
		at := fmt.Sprintf("orders.study_wait_overrides.%d", i)
		if o.Wait <= 0 {
			bad(at+".wait", "must be positive")
		}
		if o.Priority == "" && o.Facility == "" && o.Procedure == "" {
			bad(at, "give at least one of priority, facility, procedure")
		}
		if o.Priority != "" && o.Priority != "urgent" && o.Priority != "routine" {
			bad(at+".priority", fmt.Sprintf("want urgent or routine (stat, asap and urgent orders are urgent), got %q", o.Priority))
		}
		if o.Facility != "" && !slices.ContainsFunc(c.Facilities, func(f Facility) bool { return f.ID == o.Facility }) {
			bad(at+".facility", fmt.Sprintf("no facility has id %q", o.Facility))
		}
	}
	if c.Orders.StableAfter < 0 {
		bad("orders.stable_after", "must not be negative (0: score as soon as the study is found)")
	}
	if c.Orders.PollMin <= 0 || c.Orders.PollMax < c.Orders.PollMin {
		bad("orders.poll_min", "must be positive and not above orders.poll_max")
	}
	if c.Orders.PollRate <= 0 {
		bad("orders.poll_rate", "must be positive (QIDO-RS looks per second)")
	}
	if c.Orders.WatchAfter <= 0 {
		bad("orders.watch_after", "must be positive")
	}
	if c.Orders.AckWait.D() < time.Second {
		bad("orders.ack_wait", "must be at least 1s")
	}
	if c.Orders.DeliveryWindow <= 0 {
		bad("orders.delivery_window", "must be positive")
	}
	if c.Orders.MaxBodyBytes <= 0 {
		bad("orders.max_body_bytes", "must be positive")
	}
	if c.Orders.MaxInstancesPerStudy <= 0 {
		bad("orders.max_instances_per_study", "must be positive")
	}
	if c.Orders.FairWindow == 0 || c.Orders.FairWindow < -1 {
		bad("orders.fair_window", fmt.Sprintf("must be positive, or -1 for stream order; got %d", c.Orders.FairWindow))
	}
	if c.Orders.MaxStudyBytes <= 0 {
		bad("orders.max_study_bytes", fmt.Sprintf("must be positive, got %d", c.Orders.MaxStudyBytes))
	}
	if c.PACS.MaxInstanceBytes <= 0 {
		bad("pacs.max_instance_bytes", "must be positive")
	}
	if c.PACS.MaxInflatedBytes <= 0 {
		bad("pacs.max_inflated_bytes", "must be positive")
	}
	if !(c.PACS.MaxInflateRatio >= 1) || math.IsInf(c.PACS.MaxInflateRatio, 0) {
		bad("pacs.max_inflate_ratio", "must be a number of at least 1")
	}
	badNode := func(n *yaml.Node, path, msg string) {
		if n == nil {
			bad(path, msg)
			return
		}
		errs = append(errs, Error{File: name, Line: n.Line, Column: n.Column, Message: fmt.Sprintf("%s: %s", path, msg)})
	}
	validateHL7v2(c, root, bad, badNode)
	validateDIMSE(c, bad)
	validateSecurity(c, bad, badAt)
	validateFacilities(c, bad)
	validateRole(c, bad, badAt)
	validateVerdicts(c, bad)
	validateLimits(c, bad)
	validateConsole(c, bad)
	validateRuntime(c, bad)
	for _, name := range sortedKeys(c.Destinations) {
		d := c.Destinations[name]
		path := "destinations." + name
		if !destinationNameRE.MatchString(name) {
			bad(path, "a destination name is lower-case letters, digits, '-' and '_', starting with a letter")
			continue
		}
		if name == BuiltinDestination {
			bad(path, `"fhir" is the built-in destination of the fhir section; choose another name`)
			continue
		}
		if d.Timeout < 0 {
			bad(path+".timeout", "must not be negative")
		}
		// What a destination of each type needs is checked by the type
		// itself (radgate.Registry.CheckConfig): the types are registered
		// by the adapters, which this package does not know.
	}
	return errs
}

var destinationNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkHostPort checks a listen address: host:port, port 0-65535 (0: any
// free port).
func checkHostPort(addr string) error {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:2575)", addr)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be 0-65535", addr)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// CheckHostPort reports whether addr is host:port with a valid port; the
// error quotes addr and gives an example.
func CheckHostPort(addr string) error { return checkHostPort(addr) }

// CheckHTTPURL reports whether raw is an http or https URL with a host.
func CheckHTTPURL(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%q is not a URL with scheme http or https and a host", raw)
	}
	return nil
}
