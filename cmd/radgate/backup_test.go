package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/broker"
)

func runSub(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// radgate backup on one serve's NATS, radgate restore on another's, with
// the config each serve runs with.
func TestBackupRestoreCommands(t *testing.T) {
	addr1, dir1 := freeAddr(t), t.TempDir()
	nc1 := startServeNATS(t, addr1, dir1)
	topo1, err := broker.EnsureTopology(t.Context(), nc1)
	require.NoError(t, err)
	_, err = topo1.Orders.Put(t.Context(), "o1", []byte(`{"id":"o1","state":"delivered"}`))
	require.NoError(t, err)
	_, err = topo1.Heatmaps.PutBytes(t.Context(), "r1", bytes.Repeat([]byte{0x89, 'P'}, 200_000))
	require.NoError(t, err)

	out := filepath.Join(t.TempDir(), "b")
	_, err = runSub(t, newBackupCmd(), "--config", dlqConfig(t, addr1, dir1))
	require.Equal(t, 2, exitCode(t, err))
	stdout, err := runSub(t, newBackupCmd(), "--config", dlqConfig(t, addr1, dir1), "--out", out)
	require.NoError(t, err, stdout)
	require.Contains(t, stdout, fmt.Sprintf("state version %d, to %s", broker.StateVersion, out))
	t.Log(stdout)

	addr2, dir2 := freeAddr(t), t.TempDir()
	nc2 := startServeNATS(t, addr2, dir2)
	topo2, err := broker.EnsureTopology(t.Context(), nc2)
	require.NoError(t, err)
	_, err = topo2.Orders.Put(t.Context(), "other", []byte(`{}`))
	require.NoError(t, err)
	cfg2 := dlqConfig(t, addr2, dir2)
	_, err = runSub(t, newRestoreCmd(), "--config", cfg2, "--from", out)
	require.ErrorContains(t, err, "refusing to overwrite streams that hold messages: KV_radgate_orders (1 messages)")
	stdout, err = runSub(t, newRestoreCmd(), "--config", cfg2, "--from", out, "--force")
	require.NoError(t, err, stdout)
	require.Contains(t, stdout, "restored ")

	e, err := topo2.Orders.Get(t.Context(), "o1")
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"o1","state":"delivered"}`, string(e.Value()))
	_, err = topo2.Orders.Get(t.Context(), "other")
	require.Error(t, err, "force replaced the bucket")
	png, err := topo2.Heatmaps.GetBytes(t.Context(), "r1")
	require.NoError(t, err)
	require.Equal(t, bytes.Repeat([]byte{0x89, 'P'}, 200_000), png)
	_, err = os.Stat(filepath.Join(out, broker.ManifestFile))
	require.NoError(t, err)
}
