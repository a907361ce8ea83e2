package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// CredentialFile is where, under the data directory, radgate serve keeps
// the credential of its embedded NATS server: an NKey user seed, in the
// format nats.go's NkeyOptionFromSeed and the nats CLI (--nkey) read.
const CredentialFile = "nats/credentials.nk"

// CredentialPath is the embedded server's credential file in dataDir.
func CredentialPath(dataDir string) string {
	return filepath.Join(dataDir, filepath.FromSlash(CredentialFile))
}

// Credential is the one NKey user the embedded NATS server admits. The
// server knows only its public key; a client proves it holds the seed by
// signing the server's nonce, so the secret never crosses the network.
type Credential struct {
	path string
	kp   nkeys.KeyPair
	pub  string
}

// Path is the file the credential was read from or written to.
func (c *Credential) Path() string { return c.path }

// PublicKey is the user's public NKey (U…), what the server is given.
func (c *Credential) PublicKey() string { return c.pub }

// Option makes a nats.go client authenticate with the credential.
func (c *Credential) Option() nats.Option { return nats.Nkey(c.pub, c.kp.Sign) }

// LoadOrCreateCredential reads the credential at path, or, when there is
// none, generates a new NKey user and writes its seed there, readable by its
// owner only (0600). The file is written whole or not at all (a temporary
// file linked into place), and an existing one is never replaced: a second
// process racing to create it reads the winner's. A file that anyone but
// its owner may read or write is refused, as ssh refuses a private key.
func LoadOrCreateCredential(path string) (*Credential, error) {
	c, err := LoadCredential(path)
	if err == nil {
		return c, checkPrivate(path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating the embedded NATS credential %s: %w", path, err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("generating the embedded NATS credential: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("generating the embedded NATS credential: %w", err)
	}
	if err := writeNew(path, append(append([]byte(credentialHeader), seed...), '\n')); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process wrote it first
			if c, err = LoadCredential(path); err != nil {
				return nil, err
			}
			return c, checkPrivate(path)
		}
		return nil, fmt.Errorf("writing the embedded NATS credential %s: %w", path, err)
	}
	return LoadCredential(path)
}

const credentialHeader = "# radgate: the client credential of the embedded NATS server (an NKey user\n" +
	"# seed). radgate serve generated it; radgate dlq, hl7 and usage read it.\n" +
	"# Anyone holding it can read and publish every order: keep it at mode 0600.\n"

// LoadCredential reads the credential at path. Its errors name the file.
func LoadCredential(path string) (*Credential, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the embedded NATS credential: %w", err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("reading the embedded NATS credential %s: not an NKey user seed: %w", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded NATS credential %s: %w", path, err)
	}
	return &Credential{path: path, kp: kp, pub: pub}, nil
}

func checkPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reading the embedded NATS credential: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("the embedded NATS credential %s has mode %#o: it must be readable by its owner only (chmod 600 %s)", path, perm, path)
	}
	return nil
}

// writeNew writes data to path, which must not exist, all at once: a
// reader sees no file or the whole of it.
func writeNew(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// CredentialsOption authenticates a client with the file at path
// (nats.credentials_file): a .creds file (a user JWT and its seed, for an
// operator-managed NATS) or an NKey user seed (radgate sites nats-config's
// hub.nk, radgate serve's credentials.nk). Its error names the file.
func CredentialsOption(path string) (nats.Option, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nats.credentials_file: %w", err)
	}
	hasJWT := bytes.Contains(b, []byte("BEGIN NATS USER JWT"))
	clear(b)
	if hasJWT {
		return nats.UserCredentials(path), nil
	}
	c, err := LoadCredential(path)
	if err != nil {
		return nil, fmt.Errorf("nats.credentials_file: %w (neither a .creds file nor an NKey user seed)", err)
	}
	return c.Option(), nil
}
