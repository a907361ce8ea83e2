package broker

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
)

func TestCredentialGeneratedOnceAndKeptPrivate(t *testing.T) {
	path := CredentialPath(t.TempDir())
	c, err := LoadOrCreateCredential(path)
	require.NoError(t, err)
	require.Equal(t, path, c.Path())
	require.True(t, nkeys.IsValidPublicUserKey(c.PublicKey()), c.PublicKey())

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "readable by its owner only")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), "\nSU", "an NKey user seed")
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	require.Equal(t, c.PublicKey(), pub)
	// nats.go (and the nats CLI's --nkey) read the file as it is.
	_, err = nats.NkeyOptionFromSeed(path)
	require.NoError(t, err)
	left, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".credentials-*"))
	require.NoError(t, err)
	require.Empty(t, left, "no temporary file left behind")

	// Later starts reuse it.
	again, err := LoadOrCreateCredential(path)
	require.NoError(t, err)
	require.Equal(t, c.PublicKey(), again.PublicKey())
	b2, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, b, b2, "the file is not rewritten")

	// Two seeds are never the same.
	other, err := LoadOrCreateCredential(CredentialPath(t.TempDir()))
	require.NoError(t, err)
	require.NotEqual(t, c.PublicKey(), other.PublicKey())

	// A file others may read is refused, naming it and the fix.
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = LoadOrCreateCredential(path)
	require.ErrorContains(t, err, "the embedded NATS credential "+path+" has mode 0644: it must be readable by its owner only (chmod 600 "+path+")")
}

// TestCredentialCreatedConcurrently: processes starting together on one
// data directory end with one credential.
func TestCredentialCreatedConcurrently(t *testing.T) {
	path := CredentialPath(t.TempDir())
	keys := make([]string, 8)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			c, err := LoadOrCreateCredential(path)
			errs[i] = err
			if err == nil {
				keys[i] = c.PublicKey()
			}
		})
	}
	wg.Wait()
	for i := range keys {
		require.NoError(t, errs[i])
		require.Equal(t, keys[0], keys[i])
	}
}

// TestEmbeddedServerRequiresTheCredential: started with a credential, the
// embedded server refuses a client without it, with another key or with a
// user and password, and admits one with it, across a restart on the same
// data directory.
func TestEmbeddedServerRequiresTheCredential(t *testing.T) {
	dataDir := t.TempDir()
	start := func() *EmbeddedServer {
		cred, err := LoadOrCreateCredential(CredentialPath(dataDir))
		require.NoError(t, err)
		srv, err := StartEmbeddedWith(EmbeddedOptions{StoreDir: filepath.Join(dataDir, "nats"), Host: "127.0.0.1", Port: -1, Credential: cred})
		require.NoError(t, err)
		require.Equal(t, cred, srv.Credential())
		return srv
	}
	srv := start()
	url := srv.ClientURL()

	_, err := nats.Connect(url)
	require.ErrorIs(t, err, nats.ErrAuthorization, "no credential")
	_, err = nats.Connect(url, nats.UserInfo("radgate", "radgate"))
	require.ErrorIs(t, err, nats.ErrAuthorization, "a user and password")
	wrong, err := LoadOrCreateCredential(CredentialPath(t.TempDir()))
	require.NoError(t, err)
	_, err = nats.Connect(url, wrong.Option())
	require.ErrorIs(t, err, nats.ErrAuthorization, "another NKey user")
	_, err = Connect(url, "", nil, wrong.Option())
	require.ErrorContains(t, err, "Authorization Violation")

	// With the credential: JetStream works, and survives a restart.
	nc, err := Connect(url, "", nil, srv.Credential().Option())
	require.NoError(t, err)
	topo, err := EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	_, err = topo.Orders.Put(t.Context(), "o1", []byte("received"))
	require.NoError(t, err)
	nc.Close()
	srv.Shutdown()

	srv = start()
	t.Cleanup(srv.Shutdown)
	_, err = nats.Connect(srv.ClientURL())
	require.ErrorIs(t, err, nats.ErrAuthorization, "no credential after a restart either")
	opt, err := nats.NkeyOptionFromSeed(CredentialPath(dataDir)) // as the nats CLI's --nkey
	require.NoError(t, err)
	nc, err = nats.Connect(srv.ClientURL(), opt)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	topo, err = EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	e, err := topo.Orders.Get(t.Context(), "o1")
	require.NoError(t, err)
	require.Equal(t, "received", string(e.Value()))
	require.False(t, strings.Contains(srv.ClientURL(), "@"), "no secret in the URL")
}

// nats.credentials_file may be an NKey user seed (a hub's hub.nk): Connect
// authenticates with it; another seed is refused; a file that is neither a
// .creds file nor a seed is an error naming it.
func TestCredentialsFileNKeySeed(t *testing.T) {
	dir := t.TempDir()
	cred, err := LoadOrCreateCredential(filepath.Join(dir, "hub.nk"))
	require.NoError(t, err)
	srv, err := StartEmbeddedWith(EmbeddedOptions{StoreDir: t.TempDir(), Host: "127.0.0.1", Port: -1, Credential: cred})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)

	nc, err := Connect(srv.ClientURL(), cred.Path(), nil, nats.MaxReconnects(0))
	require.NoError(t, err)
	nc.Close()

	other, err := LoadOrCreateCredential(filepath.Join(dir, "other.nk"))
	require.NoError(t, err)
	_, err = Connect(srv.ClientURL(), other.Path(), nil, nats.MaxReconnects(0))
	require.ErrorIs(t, err, nats.ErrAuthorization)

	junk := filepath.Join(dir, "junk")
	require.NoError(t, os.WriteFile(junk, []byte("not a credential"), 0o600))
	_, err = Connect(srv.ClientURL(), junk, nil)
	require.ErrorContains(t, err, "nats.credentials_file")
	require.ErrorContains(t, err, junk)
	_, err = Connect(srv.ClientURL(), filepath.Join(dir, "missing.creds"), nil)
	require.ErrorContains(t, err, "missing.creds")
}
