package config

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadDefaultsAndOverrides(t *testing.T) {
	cfg, err := Load("radgate.yaml", []byte(`
listen: 127.0.0.1:9090
nats:
  url: nats://127.0.0.1:4222
orders:
  study_wait_window: 2m
`))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9090", cfg.Listen)
	require.Equal(t, "nats://127.0.0.1:4222", cfg.NATS.URL)
	require.Equal(t, 2*time.Minute, cfg.Orders.StudyWaitWindow.D())
	require.Equal(t, Default().FHIR, cfg.FHIR, "untouched sections keep their defaults")
	require.Equal(t, []string{DefaultEngine}, cfg.Engines)
	require.Equal(t, "", cfg.HL7v2.Listen, "the HL7 v2 intake is off by default")
}

func TestLoadHL7v2(t *testing.T) {
	cfg, err := Load("radgate.yaml", []byte("hl7v2:\n  listen: 127.0.0.1:2575\n  accession_system: urn:oid:1.2.3.4\n"))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:2575", cfg.HL7v2.Listen)
	require.Equal(t, "urn:oid:1.2.3.4", cfg.HL7v2.AccessionSystem)
	require.Equal(t, 1<<20, cfg.HL7v2.MaxMessageBytes)
	require.Equal(t, 30*time.Second, cfg.HL7v2.ReadTimeout.D())
	require.Equal(t, 10*time.Minute, cfg.HL7v2.IdleTimeout.D())
	require.Equal(t, 64, cfg.HL7v2.MaxConnections)
	require.Equal(t, 8, cfg.HL7v2.MaxConnectionsPerSource)
	require.Empty(t, cfg.HL7v2.AllowNetworks)

	// Beyond loopback: with allow_networks, client certificates or the
	// explicit opt-in.
	for _, extra := range []string{
		"  allow_networks: [10.20.0.0/16, 192.168.1.7, \"fd00::/8\"]\n",
		"  allow_any_source: true\n",
	} {
		cfg, err := Load("radgate.yaml", []byte("hl7v2:\n  listen: 0.0.0.0:2575\n"+extra))
		require.NoError(t, err, extra)
		require.NoError(t, cfg.CheckHL7Exposure())
	}
	cfg, err = Load("radgate.yaml", []byte("hl7v2:\n  listen: 0.0.0.0:2575\n  allow_networks: [10.20.0.0/16, 192.168.1.7]\n"))
	require.NoError(t, err)
	nets, err := cfg.HL7v2.AllowPrefixes()
	require.NoError(t, err)
	require.Equal(t, "[10.20.0.0/16 192.168.1.7/32]", fmt.Sprint(nets))
}

func TestLoadEmptyIsDefault(t *testing.T) {
	cfg, err := Load("radgate.yaml", nil)
	require.NoError(t, err)
	require.Equal(t, Default(), cfg)
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "misspelled key",
			yaml: "listen: 127.0.0.1:8080\npacs:\n  dicomweb_ur: http://x\n",
			want: []string{`radgate.yaml:3:3: unknown key "dicomweb_ur" in pacs (known: dicomweb_url, username, password_env, password_file, timeout, max_instance_bytes, max_inflated_bytes, max_inflate_ratio, auth, tls, dimse)`},
		},
		{
			name: "wrong type and bad duration, both reported",
			yaml: "inference:\n  workers: many\norders:\n  retry_min: soon\n",
			want: []string{
				`radgate.yaml:2:12: inference.workers: expected an integer, got "many"`,
				`radgate.yaml:4:14: orders.retry_min: invalid duration "soon" (use e.g. 30s, 10m, 1h)`,
			},
		},
		{
			name: "bad URL positioned at its value",
			yaml: "fhir:\n  base_url: ftp://server\n",
			want: []string{`radgate.yaml:2:13: fhir.base_url: "ftp://server" is not a URL with scheme http or https and a host`},
		},
		{
			name: "replicas must be 1, 3 or 5, and more than 1 needs a cluster",
			yaml: "nats:\n  replicas: 2\n",
			want: []string{`radgate.yaml:2:13: nats.replicas: 2: must be 1, 3 or 5 (an odd number of copies, for a quorum)`},
		},
		{
			name: "runtime: GOGC off refused, a memory limit too small to run in",
			yaml: "runtime:\n  gc_percent: -1\n  memory_limit: 1MiB\n",
			want: []string{
				`radgate.yaml:2:15: runtime.gc_percent: -1: must be 25 to 10000 (Go's GOGC; collecting never is not offered: the heap would grow without bound)`,
				`radgate.yaml:3:17: runtime.memory_limit: 1MiB: must be 0 (none) or at least 64MiB`,
			},
		},
		{
			name: "publish_retry bounded",
			yaml: "nats:\n  publish_retry: 2m\n",
			want: []string{`radgate.yaml:2:18: nats.publish_retry: 2m0s: must be 0 to 45s (an intake waits for it within its 60 s answer)`},
		},
		{
			name: "replicas 3 on the embedded server",
			yaml: "nats:\n  replicas: 3\n",
			want: []string{`radgate.yaml:2:13: nats.replicas: 3 needs nats.url to name a JetStream cluster of at least 3 servers: the embedded server is a single server`},
		},
		{
			name: "two unknown keys at two levels",
			yaml: "lisen: x\nnats:\n  uri: nats://a\n",
			want: []string{
				`radgate.yaml:1:1: unknown key "lisen" in the top level (known: role, edge, listen, http, data_dir, models_dir, engines, routes_file, facilities, destinations, nats, inference, pacs, fhir, orders, hl7v2, dimse, verdicts, retention, console, runtime)`,
				`radgate.yaml:3:3: unknown key "uri" in nats (known: url, credentials_file, embedded_listen, replicas, publish_retry)`,
			},
		},
		{
			name: "list where a mapping belongs",
			yaml: "pacs: [a, b]\nengines: one\n",
			want: []string{
				`radgate.yaml:1:7: pacs: expected a mapping of keys, got a list`,
				`radgate.yaml:2:10: engines: expected a list, got "one"`,
			},
		},
		{
			name: "embedded NATS address that is not host:port",
			yaml: "nats:\n  embedded_listen: 4222\n",
			want: []string{`radgate.yaml:2:20: nats.embedded_listen: "4222" is not host:port (e.g. 127.0.0.1:4222)`},
		},
		{
			name: "embedded NATS port out of range",
			yaml: "nats:\n  embedded_listen: 127.0.0.1:70000\n",
			want: []string{`radgate.yaml:2:20: nats.embedded_listen: "127.0.0.1:70000": port must be 1-65535 (0 or -1: any free port)`},
		},
		{
			name: "embedded NATS on a hostname",
			yaml: "nats:\n  embedded_listen: nats.example.org:4222\n",
			want: []string{`radgate.yaml:2:20: nats.embedded_listen: "nats.example.org:4222": host must be an IP address or localhost`},
		},
		{
			name: "embedded NATS address emptied without an external server",
			yaml: "nats:\n  embedded_listen: \"\"\n",
			want: []string{`radgate.yaml:2:20: nats.embedded_listen: must not be empty when nats.url is (e.g. 127.0.0.1:4222)`},
		},
		{
			name: "HL7 v2 listener that is not host:port, and a bad accession system",
			yaml: "hl7v2:\n  listen: 2575\n  accession_system: hospital accession\n  read_timeout: 0s\n",
			want: []string{
				`radgate.yaml:2:11: hl7v2.listen: "2575" is not host:port (e.g. 127.0.0.1:2575)`,
				`radgate.yaml:3:21: hl7v2.accession_system: "hospital accession" is not an absolute URI (e.g. http://hospital.example.org/fhir/accession or urn:oid:1.2.3)`,
				`radgate.yaml:4:17: hl7v2.read_timeout: must be positive`,
			},
		},
		{
			name: "HL7 v2 listener on the HTTP intake's address",
			yaml: "listen: 127.0.0.1:8080\nhl7v2:\n  listen: 127.0.0.1:8080\n",
			want: []string{`radgate.yaml:3:11: hl7v2.listen: "127.0.0.1:8080" is also the HTTP listen address`},
		},
		// Syntax errors at the line:col of the mistake. yaml.v3 alone gave
		// the line of the enclosing construct, often one early, and no
		// column (its words in each comment).
		{
			name: "HL7 v2 listener beyond loopback without client certificates or allow_networks",
			yaml: "hl7v2:\n  listen: 0.0.0.0:2575\n",
			want: []string{`radgate.yaml:2:11: hl7v2.listen: is not a loopback address and MLLP has no authentication: set hl7v2.tls with client_auth require, or hl7v2.allow_networks (the senders' networks), or hl7v2.allow_any_source: true to take orders from anyone who reaches it`},
		},
		{
			name: "HL7 v2 TLS that does not require client certificates does not open a listener",
			yaml: "hl7v2:\n  listen: 0.0.0.0:2575\n  tls:\n    cert_file: /nonexistent/cert.pem\n    client_auth: request\n",
			want: []string{
				`radgate.yaml:2:11: hl7v2.listen: is not a loopback address and MLLP has no authentication: set hl7v2.tls with client_auth require, or hl7v2.allow_networks (the senders' networks), or hl7v2.allow_any_source: true to take orders from anyone who reaches it`,
				`radgate.yaml:4:5: hl7v2.tls: cert_file and key_file go together: set both or neither`,
				`radgate.yaml:4:16: hl7v2.tls.cert_file: cannot read "/nonexistent/cert.pem": no such file or directory`,
				`radgate.yaml:5:18: hl7v2.tls.client_auth: request needs client_ca_file (the CAs that sign client certificates)`,
			},
		},
		{
			name: "HL7 v2 limits and networks",
			yaml: "hl7v2:\n  listen: 127.0.0.1:2575\n  max_connections: 4\n  max_connections_per_source: 8\n  idle_timeout: 0s\n  allow_networks: [10.0.0.0/8, not-a-net]\n",
			want: []string{
				`radgate.yaml:4:31: hl7v2.max_connections_per_source: 8 is above hl7v2.max_connections (4)`,
				`radgate.yaml:5:17: hl7v2.idle_timeout: must be positive`,
				`radgate.yaml:6:32: hl7v2.allow_networks: "not-a-net" is not a network in CIDR notation (e.g. 10.20.0.0/16) or an IP address`,
			},
		},
		{
			name: "syntax error: unclosed [ at the end of the file",
			yaml: "listen: [\n", // 1: did not find expected node content
			want: []string{"radgate.yaml:1:9: '[' is not closed (no ']' before the end of the file)"},
		},
		{
			name: "syntax error: unclosed [",
			yaml: "listen: 127.0.0.1:8080\nengines: [cxr-pneumonia-densenet121\ninference:\n  workers: 2\n", // 1: did not find expected ',' or ']'
			want: []string{"radgate.yaml:2:10: '[' is not closed (expected ',' or ']' before 3:1)"},
		},
		{
			name: "syntax error: unclosed {",
			yaml: "listen: 127.0.0.1:8080\nnats: {url: nats://127.0.0.1:4222\ninference:\n  workers: 2\n", // 1: did not find expected ',' or '}'
			want: []string{"radgate.yaml:2:7: '{' is not closed (expected ',' or '}' before 3:1)"},
		},
		{
			name: "syntax error: key indented less than its siblings",
			yaml: "nats:\n  url: nats://127.0.0.1:4222\n embedded_listen: 127.0.0.1:4223\n", // 2: did not find expected key
			want: []string{`radgate.yaml:3:2: "embedded_listen" is indented to column 2, where no key or list item above it starts`},
		},
		{
			name: "syntax error: key indented under a key that has a value",
			yaml: "nats:\n  url: nats://127.0.0.1:4222\n    credentials_file: /etc/radgate/nats.creds\n", // 3: mapping values are not allowed in this context
			want: []string{"radgate.yaml:3:21: mapping values are not allowed in this context (is this line indented too far?)"},
		},
		{
			name: "syntax error: tab indentation",
			yaml: "nats:\n\turl: nats://127.0.0.1:4222\n", // 2: found character that cannot start any token
			want: []string{"radgate.yaml:2:1: found a tab character: YAML indents with spaces only"},
		},
		{
			name: "syntax error: unterminated quoted string",
			yaml: "listen: \"127.0.0.1:8080\nnats:\n  url: nats://127.0.0.1:4222\n", // 4: found unexpected end of stream
			want: []string{"radgate.yaml:1:9: this double-quoted string is never closed"},
		},
		{
			name: "syntax error: unterminated single-quoted string",
			yaml: "pacs:\n  dicomweb_url: 'http://pacs:8042/dicom-web\n", // 3: found unexpected end of stream
			want: []string{"radgate.yaml:2:17: this single-quoted string is never closed"},
		},
		{
			name: "duplicate keys, at the top and in a section",
			// yaml.v3: "unmarshal errors:\n  line 4: mapping key \"listen\" already defined at line 1", no position
			yaml: "listen: 127.0.0.1:8080\ninference:\n  workers: 2\n  workers: 3\nlisten: 127.0.0.1:9090\n",
			want: []string{
				`radgate.yaml:4:3: inference: key "workers" appears twice (first at line 3)`,
				`radgate.yaml:5:1: the top level: key "listen" appears twice (first at line 1)`,
			},
		},
		{
			name: "a console session shorter than a minute",
			yaml: "console:\n  session_ttl: 30s\n",
			want: []string{`radgate.yaml:2:16: console.session_ttl: must be at least 1m (a session lasts this long after sign-in)`},
		},
		{
			name: "a destination defined twice",
			yaml: "destinations:\n  ris:\n    type: hl7v2\n    address: 127.0.0.1:2575\n  ris:\n    type: hl7v2\n    address: 127.0.0.1:2576\n",
			want: []string{`radgate.yaml:5:3: destinations: key "ris" appears twice (first at line 2)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("radgate.yaml", []byte(tc.yaml))
			require.Error(t, err)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestEmbeddedNATSAddress(t *testing.T) {
	for _, tc := range []struct {
		listen   string
		host     string
		port     int
		loopback bool
	}{
		{"127.0.0.1:4222", "127.0.0.1", 4222, true},
		{"localhost:4333", "localhost", 4333, true},
		{"[::1]:4222", "::1", 4222, true},
		{"127.0.0.1:0", "127.0.0.1", -1, true},
		{"127.0.0.1:-1", "127.0.0.1", -1, true},
		{"0.0.0.0:4222", "0.0.0.0", 4222, false},
		{":4222", "", 4222, false},
		{"10.1.2.3:4222", "10.1.2.3", 4222, false},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			cfg, err := Load("radgate.yaml", []byte("nats:\n  embedded_listen: \""+tc.listen+"\"\n"))
			require.NoError(t, err)
			host, port, err := cfg.NATS.EmbeddedAddr()
			require.NoError(t, err)
			require.Equal(t, tc.host, host)
			require.Equal(t, tc.port, port)
			require.Equal(t, tc.loopback, cfg.NATS.EmbeddedIsLoopback())
		})
	}
	require.Equal(t, "127.0.0.1:4222", Default().NATS.EmbeddedListen, "loopback, NATS's usual port")
}
