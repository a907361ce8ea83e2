// Package oidcop runs a real OpenID Provider on 127.0.0.1 for tests: the
// OpenID-certified github.com/zitadel/oidc/v3 op package, set up as its
// example server does (exampleop: discovery, authorization endpoint /auth,
// token endpoint, JWKS, the HTML login form at /login/username, PKCE S256),
// over its example in-memory storage. What the example hard-codes is chosen
// here: the users (each with the roles claim radgate reads) and the one
// confidential client, with the redirect URIs the test serves.
package oidcop

import (
	"context"
	"net"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is a user who can sign in at the provider's login form.
type User struct {
	// ID is the subject (sub) of its ID tokens.
	ID       string
	Username string
	Password string
	// Roles go into the ID token's RolesClaim (nil: no claim at all).
	Roles []string
}

// Options configure the provider.
type Options struct {
	// ClientID and ClientSecret are the confidential (client_secret_basic)
	// web client the relying party signs in with.
	ClientID, ClientSecret string
	// RedirectURIs are the client's registered redirect URIs (exact match).
	RedirectURIs []string
	// RolesClaim is the ID token claim the roles go into ("roles" when
	// empty).
	RolesClaim string
	Users      []User
	// Host names the provider in its issuer URL: "localhost" makes it
	// another site than a relying party on 127.0.0.1 (as a browser
	// sees sites); empty: 127.0.0.1. It listens on 127.0.0.1 either way.
	Host string
}

// Server is a running provider.
type Server struct {
	// Issuer is the provider's issuer URL (http://127.0.0.1:port, or
	// Options.Host's), which its discovery document names.
	Issuer string
	srv    *httptest.Server
}

// Start runs the provider until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.RolesClaim == "" {
		o.RolesClaim = "roles"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("oidcop: %v", err)
	}
	issuer := "http://" + l.Addr().String()
	if o.Host != "" {
		issuer = "http://" + net.JoinHostPort(o.Host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	users := userStore{byID: map[string]*storage.User{}}
	roles := map[string][]string{}
	for _, u := range o.Users {
		users.byID[u.ID] = &storage.User{ID: u.ID, Username: u.Username, Password: u.Password, FirstName: u.Username,
			LastName: "Test", Email: u.Username + "@example.org", EmailVerified: true, PreferredLanguage: language.English}
		if u.Roles != nil {
			roles[u.ID] = u.Roles
		}
	}
	clients := map[string]*storage.Client{o.ClientID: storage.WebClient(o.ClientID, o.ClientSecret, o.RedirectURIs...)}
	st := &withRoles{Storage: storage.NewStorageWithClients(users, clients), claim: o.RolesClaim, roles: roles}
	srv := httptest.NewUnstartedServer(exampleop.SetupServer(issuer, st, nil, false))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return &Server{Issuer: issuer, srv: srv}
}

// Close stops the provider (a test of an unreachable provider).
func (s *Server) Close() { s.srv.Close() }

// userStore is the example storage's UserStore over the test's users.
type userStore struct{ byID map[string]*storage.User }

func (u userStore) GetUserByID(id string) *storage.User { return u.byID[id] }
func (u userStore) GetUserByUsername(name string) *storage.User {
	for _, x := range u.byID {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (u userStore) ExampleClientID() string { return storage.ServiceUserID }

// withRoles is the example storage with each user's roles added to its ID
// tokens (as an identity provider's role mapper does).
type withRoles struct {
	*storage.Storage
	claim string
	roles map[string][]string
}

// SetUserinfoFromRequest is called for the ID token's claims.
func (s *withRoles) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if r, ok := s.roles[req.GetSubject()]; ok {
		ui.AppendClaims(s.claim, r)
	}
	return nil
}
