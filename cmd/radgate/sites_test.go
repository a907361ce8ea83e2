package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/internal/testenv"
)

// radgate sites nats-config writes one credential per facility and the
// hub's, mode 0600, and prints a configuration nats-server accepts, with a
// user per site confined to its subjects; run again after a facility is
// added, it keeps every credential it had written.
func TestSitesNATSConfig(t *testing.T) {
	writeConfig := func(ids ...string) string {
		var b strings.Builder
		b.WriteString("facilities:")
		if len(ids) == 0 {
			b.WriteString(" []")
		}
		b.WriteString("\n")
		for _, id := range ids {
			b.WriteString("  - id: " + id + "\n    name: " + id + "\n")
		}
		p := filepath.Join(t.TempDir(), "radgate.yaml")
		require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o600))
		return p
	}
	out := filepath.Join(t.TempDir(), "creds")
	_, err := runSub(t, newSitesCmd(), "nats-config", "--out", out)
	require.Equal(t, 2, exitCode(t, err))
	_, err = runSub(t, newSitesCmd(), "nats-config", "--config", writeConfig(), "--out", out)
	require.ErrorContains(t, err, "no facility")

	cmd := newSitesCmd()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"nats-config", "--config", writeConfig("general-hospital", "st-mary"), "--out", out, "--leaf-listen", "127.0.0.1:7422"})
	require.NoError(t, cmd.ExecuteContext(t.Context()), stderr.String())
	printed := stdout.String()
	t.Log(printed, stderr.String())
	require.Contains(t, stderr.String(), "site st-mary: "+broker.SiteCredentialPath(out, "st-mary")+" (domain edge-st-mary)")
	st, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	keys := map[string]string{}
	for _, f := range []string{broker.HubCredentialPath(out), broker.SiteCredentialPath(out, "general-hospital"), broker.SiteCredentialPath(out, "st-mary")} {
		st, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
		c, err := broker.LoadCredential(f)
		require.NoError(t, err)
		keys[f] = c.PublicKey()
		require.Contains(t, printed, c.PublicKey())
	}

	// What it printed is a nats-server configuration (with a node's own lines).
	conf := filepath.Join(t.TempDir(), "hub.conf")
	require.NoError(t, os.WriteFile(conf, []byte("server_name: n1\nlisten: 127.0.0.1:4222\njetstream { store_dir: "+
		t.TempDir()+", domain: hub }\n"+printed), 0o600))
	opts, err := server.ProcessConfigFile(conf)
	require.NoError(t, err)
	require.Equal(t, 7422, opts.LeafNode.Port)
	require.Equal(t, map[string]bool{"js_api_reply_v2": true, "js_snapshot_sources": true}, opts.FeatureFlags)
	require.Len(t, opts.Nkeys, 3)
	for _, u := range opts.Nkeys {
		if u.Nkey == keys[broker.SiteCredentialPath(out, "st-mary")] {
			require.NotNil(t, u.Permissions)
			require.Contains(t, u.Permissions.Subscribe.Allow, "$JS.edge-st-mary.API.>")
			require.Contains(t, u.Permissions.Publish.Allow, "radgate.link.st-mary.jobs.>")
			require.NotContains(t, strings.Join(u.Permissions.Subscribe.Allow, " "), "general-hospital")
		}
	}

	// A facility added: the others keep their credentials.
	_, err = runSub(t, newSitesCmd(), "nats-config", "--config", writeConfig("general-hospital", "st-mary", "north-clinic"), "--out", out)
	require.NoError(t, err)
	for f, key := range keys {
		c, err := broker.LoadCredential(f)
		require.NoError(t, err)
		require.Equal(t, key, c.PublicKey(), f)
	}
	_, err = os.Stat(broker.SiteCredentialPath(out, "north-clinic"))
	require.NoError(t, err)
}

// radgate sites sources on a hub (a real 3-node cluster with the sites'
// users, reached with the hub's NKey seed as nats.credentials_file) gives
// RADGATE_JOBS one source per listed facility, keeps those it had of
// facilities another list named, and with --prune drops the source of a
// facility taken off the list.
func TestSitesSources(t *testing.T) {
	dir := t.TempDir()
	sc, err := broker.GenerateSites(dir, []string{"general-hospital", "st-mary"}, "127.0.0.1:7422")
	require.NoError(t, err)
	cluster := testenv.StartNATSClusterWith(t, testenv.NATSClusterOptions{Size: 3, Leaf: true, Config: sc.NodeConfig})
	nc, err := broker.Connect(cluster.ClientURLs(), broker.HubCredentialPath(dir), nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	topo, err := broker.EnsureTopologyOn(t.Context(), nc, broker.DefaultRetention(), broker.Cluster{Replicas: 3, PublishRetry: 30 * time.Second})
	require.NoError(t, err)

	writeConfig := func(ids ...string) string {
		b := "nats:\n  url: " + cluster.ClientURLs() + "\n  credentials_file: " + broker.HubCredentialPath(dir) + "\nfacilities:\n"
		for _, id := range ids {
			b += "  - id: " + id + "\n    name: " + id + "\n"
		}
		p := filepath.Join(t.TempDir(), "radgate.yaml")
		require.NoError(t, os.WriteFile(p, []byte(b), 0o600))
		return p
	}
	sources := func() []string {
		s, err := topo.JS.Stream(t.Context(), broker.StreamJobs)
		require.NoError(t, err)
		info, err := s.Info(t.Context())
		require.NoError(t, err)
		var out []string
		for _, src := range info.Config.Sources {
			out = append(out, src.External.APIPrefix+" "+src.FilterSubject)
		}
		return out
	}
	out, err := runSub(t, newSitesCmd(), "sources", "--config", writeConfig("general-hospital", "st-mary"))
	require.NoError(t, err, out)
	require.Contains(t, out, "RADGATE_JOBS sources st-mary's jobs from domain edge-st-mary")
	require.ElementsMatch(t, []string{
		"$JS.edge-general-hospital.API radgate.jobs.*.general-hospital.>",
		"$JS.edge-st-mary.API radgate.jobs.*.st-mary.>",
	}, sources())
	// A list without general-hospital (another hub process's, or the
	// operator's from before it was added) adds and keeps: nothing dropped.
	out, err = runSub(t, newSitesCmd(), "sources", "--config", writeConfig("st-mary"))
	require.NoError(t, err, out)
	require.Len(t, sources(), 2, out)
	// --prune makes the list exact.
	out, err = runSub(t, newSitesCmd(), "sources", "--prune", "--config", writeConfig("st-mary"))
	require.NoError(t, err, out)
	require.Contains(t, out, "RADGATE_JOBS no longer sources general-hospital's jobs (--prune)")
	require.Equal(t, []string{"$JS.edge-st-mary.API radgate.jobs.*.st-mary.>"}, sources())
	// A facility marked edge: false (its orders reach the hub another
	// way) gets no source.
	p := writeConfig("st-mary")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, append(b, "  - id: central\n    edge: false\n"...), 0o600))
	out, err = runSub(t, newSitesCmd(), "sources", "--config", p)
	require.NoError(t, err, out)
	require.NotContains(t, out, "central")
	require.Equal(t, []string{"$JS.edge-st-mary.API radgate.jobs.*.st-mary.>"}, sources())
}
