package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const edgeFacilities = "facilities:\n  - id: gh\n"

func TestLoadRole(t *testing.T) {
	require.Equal(t, RoleAll, Default().Role)

	cfg, err := Load("radgate.yaml", []byte(edgeFacilities+"role: edge\nedge:\n  facility: gh\n  hub_urls: [nats-leaf://127.0.0.1:7422]\n  credential_file: site-gh.nk\n"))
	require.NoError(t, err)
	require.Equal(t, RoleEdge, cfg.Role)
	require.Equal(t, Edge{Facility: "gh", HubURLs: []string{"nats-leaf://127.0.0.1:7422"}, CredentialFile: "site-gh.nk"}, cfg.Edge)

	cfg, err = Load("radgate.yaml", []byte("role: hub\nnats:\n  url: nats://127.0.0.1:4222\n"))
	require.NoError(t, err)
	require.Equal(t, RoleHub, cfg.Role)

	for _, tc := range []struct {
		yaml string
		want []string
	}{
		{"role: leaf\n", []string{`radgate.yaml:1:7: role: want all, hub or edge, got "leaf"`}},
		{"role: hub\n", []string{"radgate.yaml:1:7: role: hub needs nats.url to name the hub's JetStream cluster (domain hub)"}},
		{"role: hub\nnats:\n  url: nats://h:4222\nhl7v2:\n  listen: 127.0.0.1:2575\n", []string{
			"radgate.yaml:5:11: hl7v2.listen: must be empty for role hub: the order intakes run at the edges"}},
		{"role: all\nedge:\n  facility: gh\n", []string{"radgate.yaml:3:3: edge: is for role edge only (role is all)"}},
		{"role: edge\n", []string{
			"radgate.yaml:1:7: edge.facility: must name the site's facility id (role edge)",
			"radgate.yaml:1:7: edge.hub_urls: must list the hub's leafnode listeners (nats-leaf://host:7422)",
			"radgate.yaml:1:7: edge.credential_file: must name the site's NKey seed (radgate sites nats-config: site-<facility>.nk)",
		}},
		{edgeFacilities + "role: edge\nnats:\n  url: nats://h:4222\nedge:\n  facility: other\n  hub_urls: [\"http://h:7422\"]\n  credential_file: s.nk\n  domain: hub\n", []string{
			"radgate.yaml:5:8: nats.url: must be empty for role edge: an edge runs its embedded server as a leaf node of the hub (edge.hub_urls)",
			`radgate.yaml:7:13: edge.facility: no facility has id "other" (list the site under facilities:)`,
			`radgate.yaml:8:14: edge.hub_urls.0: "http://h:7422" is not a URL with scheme nats-leaf or tls and a host`,
			`radgate.yaml:10:11: edge.domain: "hub" is the hub's domain`,
		}},
		{"facilities:\n  - id: gh\n    edge: false\nrole: edge\nedge:\n  facility: gh\n  hub_urls: [nats-leaf://h:7422]\n  credential_file: s.nk\n", []string{
			`radgate.yaml:3:11: facilities.0.edge: is false, but this radgate is facility "gh"'s edge (role edge, edge.facility): the hub would not source its jobs`,
		}},
		{"facilities:\n  - id: gh\n    edge: maybe\n", []string{"radgate.yaml:3:11: facilities[0].edge: expected true or false, got \"maybe\""}},
	} {
		_, err := Load("radgate.yaml", []byte(tc.yaml))
		var errs Errors
		require.ErrorAs(t, err, &errs, tc.yaml)
		var got []string
		for _, e := range errs {
			got = append(got, e.Error())
		}
		require.Equal(t, tc.want, got, tc.yaml)
	}
}

// A hub's edges are its facilities but those marked edge: false (orders
// that reach the hub another way).
func TestEdgeFacilities(t *testing.T) {
	cfg, err := Load("radgate.yaml", []byte("role: hub\nnats:\n  url: nats://h:4222\nfacilities:\n  - id: a\n  - id: central\n    edge: false\n  - id: b\n    edge: true\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, cfg.EdgeFacilities())
	require.Nil(t, Default().EdgeFacilities())
}
