package service

import (
	"log/slog"
	"os"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

// TestEmbeddedNATSRequiresItsCredential: serve's embedded server generates
// its credential in data_dir on the first start (mode 0600), keeps it
// across restarts, connects radgate's own client with it, and refuses a
// client without it. Beyond loopback it still warns: there is no TLS.
func TestEmbeddedNATSRequiresItsCredential(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.NATS.EmbeddedListen = "127.0.0.1:-1"
	credPath := broker.CredentialPath(cfg.DataDir)
	_, err := os.Stat(credPath)
	require.ErrorIs(t, err, os.ErrNotExist)

	var logs lockedBuffer // nats-server logs from its own goroutines
	c, err := connectNATS(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	st, err := os.Stat(credPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	first := c.embedded.Credential().PublicKey()
	_, err = broker.EnsureTopology(t.Context(), c.nc) // radgate's own client is admitted
	require.NoError(t, err)
	_, err = nats.Connect(c.embedded.ClientURL())
	require.ErrorIs(t, err, nats.ErrAuthorization, "a client without the credential")
	require.NotContains(t, logs.String(), "beyond loopback", "on loopback: no warning")
	c.close()

	// Restarted on the same data_dir, beyond loopback: the same credential,
	// and a warning that names the exposure, not a missing authentication.
	logs.Reset()
	cfg.NATS.EmbeddedListen = "0.0.0.0:-1"
	c, err = connectNATS(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer c.close()
	require.Equal(t, first, c.embedded.Credential().PublicKey(), "reused, not regenerated")
	_, err = nats.Connect(c.embedded.ClientURL())
	require.ErrorIs(t, err, nats.ErrAuthorization)
	require.Contains(t, logs.String(), `level=WARN msg="the embedded NATS server listens beyond loopback without TLS: clients must present its generated credential, but orders cross the network unencrypted"`)
	require.Contains(t, logs.String(), "credential="+credPath)
	require.NotContains(t, logs.String(), "no authentication")
}
