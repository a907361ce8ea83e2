package broker

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate/config"
)

// AddressError is an error of ResolveAddress: the config names no address a
// client can reach (a user error, not a network one).
type AddressError struct{ Err error }

func (e *AddressError) Error() string { return e.Err.Error() }
func (e *AddressError) Unwrap() error { return e.Err }

// Address is where a radgate command other than serve (dlq, hl7, usage)
// reaches the NATS server that radgate serve uses.
type Address struct {
	// URL is the client URL: nats.url, else nats://host:port of the
	// embedded server.
	URL string
	// Where names the config setting the URL came from, for messages:
	// "nats.url = …" or "nats.embedded_listen = …".
	Where string
	// Embedded is true when the URL is that of serve's embedded server.
	Embedded bool
	// CredentialsFile is nats.credentials_file (an external server's
	// .creds file).
	CredentialsFile string
	// EmbeddedCredential is the file of the embedded server's credential
	// in data_dir (see CredentialPath), when Embedded.
	EmbeddedCredential string
}

// ResolveAddress finds the NATS server radgate serve uses, as the config
// names it: nats.url, else the embedded server at nats.embedded_listen, a
// wildcard host (empty, 0.0.0.0, ::) replaced by loopback, whose credential
// serve keeps in data_dir. A random port (0 or -1) is an error: only the
// running serve knows it. It reads no file; its errors are *AddressError.
func ResolveAddress(cfg config.Config) (Address, error) {
	n := cfg.NATS
	a := Address{URL: n.URL, Where: "nats.url = " + n.URL, CredentialsFile: n.CredentialsFile}
	if a.URL != "" {
		return a, nil
	}
	a.Embedded, a.Where = true, "nats.embedded_listen = "+n.EmbeddedListen
	a.CredentialsFile, a.EmbeddedCredential = "", CredentialPath(cfg.DataDir)
	host, port, err := n.EmbeddedAddr()
	if err != nil {
		return Address{}, &AddressError{fmt.Errorf("nats.embedded_listen: %w", err)}
	}
	if port < 0 {
		return Address{}, &AddressError{fmt.Errorf("%s is a random port, which only radgate serve knows: give it a fixed port (or set nats.url)", a.Where)}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	a.URL = "nats://" + net.JoinHostPort(host, strconv.Itoa(port))
	return a, nil
}

// ConnectJetStream opens a short-lived client connection named clientName
// (no reconnecting: a command fails fast when serve is not there) and
// returns JetStream on it and the function that closes it. To the embedded
// server it authenticates with the credential serve wrote in data_dir. The
// error says which setting the address came from, or names the credential
// file that could not be read.
func (a Address) ConnectJetStream(clientName string) (jetstream.JetStream, func(), error) {
	opts := []nats.Option{nats.Name(clientName), nats.Timeout(3 * time.Second)}
	if a.CredentialsFile != "" {
		o, err := CredentialsOption(a.CredentialsFile)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, o)
	}
	if a.Embedded {
		cred, err := LoadCredential(a.EmbeddedCredential)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (radgate serve writes it on its first start with the embedded server: give this command the --config of serve, whose data_dir holds it)", err)
		}
		opts = append(opts, cred.Option())
	}
	nc, err := nats.Connect(a.URL, opts...)
	if err != nil {
		if a.Embedded && errors.Is(err, nats.ErrAuthorization) {
			return nil, nil, fmt.Errorf("the embedded NATS server at %s refused the credential %s: is data_dir the one radgate serve runs with? %w", a.Where, a.EmbeddedCredential, err)
		}
		if a.Embedded {
			return nil, nil, fmt.Errorf("is radgate serve running? %s: %w", a.Where, err)
		}
		return nil, nil, fmt.Errorf("cannot reach NATS (%s): %w", a.Where, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}
