package broker

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
)

func TestResolveAddress(t *testing.T) {
	for _, tc := range []struct {
		name     string
		nats     config.NATS
		url      string
		where    string
		embedded bool
	}{
		{"external url wins", config.NATS{URL: "nats://a:4222,nats://b:4222", EmbeddedListen: "127.0.0.1:4222"},
			"nats://a:4222,nats://b:4222", "nats.url = nats://a:4222,nats://b:4222", false},
		{"embedded default", config.Default().NATS, "nats://127.0.0.1:4222", "nats.embedded_listen = 127.0.0.1:4222", true},
		{"every interface, IPv4", config.NATS{EmbeddedListen: "0.0.0.0:4333"}, "nats://127.0.0.1:4333", "nats.embedded_listen = 0.0.0.0:4333", true},
		{"every interface, IPv6", config.NATS{EmbeddedListen: "[::]:4333"}, "nats://[::1]:4333", "nats.embedded_listen = [::]:4333", true},
		{"empty host", config.NATS{EmbeddedListen: ":4333"}, "nats://127.0.0.1:4333", "nats.embedded_listen = :4333", true},
		{"localhost kept", config.NATS{EmbeddedListen: "localhost:4333"}, "nats://localhost:4333", "nats.embedded_listen = localhost:4333", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ResolveAddress(config.Config{DataDir: "/var/lib/radgate", NATS: tc.nats})
			require.NoError(t, err)
			require.Equal(t, tc.url, a.URL)
			require.Equal(t, tc.where, a.Where)
			require.Equal(t, tc.embedded, a.Embedded)
			if tc.embedded {
				require.Equal(t, "/var/lib/radgate/nats/credentials.nk", a.EmbeddedCredential)
			} else {
				require.Empty(t, a.EmbeddedCredential)
			}
		})
	}
}

func TestResolveAddressErrors(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:-1":  "nats.embedded_listen = 127.0.0.1:-1 is a random port, which only radgate serve knows",
		"127.0.0.1:0":   "nats.embedded_listen = 127.0.0.1:0 is a random port",
		"127.0.0.1":     `nats.embedded_listen: "127.0.0.1" is not host:port`,
		"example.org:1": `nats.embedded_listen: "example.org:1": host must be an IP address or localhost`,
	} {
		_, err := ResolveAddress(config.Config{NATS: config.NATS{EmbeddedListen: listen}})
		require.ErrorContains(t, err, want, listen)
		var ae *AddressError
		require.ErrorAs(t, err, &ae, "a config problem, not a network one")
	}
}

func TestAddressConnectJetStream(t *testing.T) {
	// Nobody listens: the error names the setting and asks about serve.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().(*net.TCPAddr)
	require.NoError(t, ln.Close())
	listen := "127.0.0.1:" + strconv.Itoa(addr.Port)
	dataDir := t.TempDir()
	cfg := config.Config{DataDir: dataDir, NATS: config.NATS{EmbeddedListen: listen}}
	a, err := ResolveAddress(cfg)
	require.NoError(t, err)
	credPath := filepath.Join(dataDir, "nats", "credentials.nk")

	// No credential in data_dir (serve never ran with it): the error names
	// the file.
	_, _, err = a.ConnectJetStream("radgate-test")
	require.ErrorContains(t, err, "reading the embedded NATS credential: open "+credPath+": no such file or directory")
	require.ErrorContains(t, err, "give this command the --config of serve")

	cred, err := LoadOrCreateCredential(credPath)
	require.NoError(t, err)
	_, _, err = a.ConnectJetStream("radgate-test")
	require.ErrorContains(t, err, "is radgate serve running? nats.embedded_listen = "+listen)
	var ae *AddressError
	require.NotErrorAs(t, err, &ae)

	ext, err := ResolveAddress(config.Config{DataDir: dataDir, NATS: config.NATS{URL: "nats://" + listen}})
	require.NoError(t, err)
	_, _, err = ext.ConnectJetStream("radgate-test")
	require.ErrorContains(t, err, "cannot reach NATS (nats.url = nats://"+listen+")")

	// serve's embedded server on that port: the client reaches its
	// JetStream with the credential from data_dir.
	srv, err := StartEmbeddedWith(EmbeddedOptions{StoreDir: filepath.Join(dataDir, "nats"), Host: "127.0.0.1", Port: addr.Port, Credential: cred})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	js, closeFn, err := a.ConnectJetStream("radgate-test")
	require.NoError(t, err)
	defer closeFn()
	info, err := js.AccountInfo(t.Context())
	require.NoError(t, err)
	require.NotNil(t, info)

	// Another data_dir's credential (not serve's): refused, naming it.
	otherDir := t.TempDir()
	_, err = LoadOrCreateCredential(CredentialPath(otherDir))
	require.NoError(t, err)
	other, err := ResolveAddress(config.Config{DataDir: otherDir, NATS: cfg.NATS})
	require.NoError(t, err)
	_, _, err = other.ConnectJetStream("radgate-test")
	require.ErrorContains(t, err, "the embedded NATS server at nats.embedded_listen = "+listen+" refused the credential "+CredentialPath(otherDir)+": is data_dir the one radgate serve runs with?")
	require.ErrorIs(t, err, nats.ErrAuthorization)

	// A credential that cannot be read, or is not one: the error names it.
	for name, mk := range map[string]func(path string) error{
		"a directory": func(p string) error { return os.MkdirAll(p, 0o700) },
		"not a seed":  func(p string) error { return os.WriteFile(p, []byte("password123\n"), 0o600) },
		"an account seed, not a user's": func(p string) error {
			kp, err := nkeys.CreateAccount()
			require.NoError(t, err)
			seed, err := kp.Seed()
			require.NoError(t, err)
			return os.WriteFile(p, append(seed, '\n'), 0o600)
		},
	} {
		dir := t.TempDir()
		p := CredentialPath(dir)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, mk(p))
		b, err := ResolveAddress(config.Config{DataDir: dir, NATS: cfg.NATS})
		require.NoError(t, err)
		_, _, err = b.ConnectJetStream("radgate-test")
		require.ErrorContains(t, err, p, name)
		require.ErrorContains(t, err, "reading the embedded NATS credential", name)
	}
}
