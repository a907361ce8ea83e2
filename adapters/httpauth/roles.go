package httpauth

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/radgate/radgate/fhir"
)

// Role is what an authenticated caller may do beyond sending orders.
type Role string

// The roles radgate knows. Every authenticated caller may send orders and
// read order states; roles add to that.
const (
	// RoleViewer reads order states (GET /orders/{id}) without patient
	// data. Every authenticated caller has it: it is implied by any
	// principal, and listing it in the tokens file is allowed.
	RoleViewer Role = "viewer"
	// RoleOperator changes things: replaying dead letters, re-sending
	// results, engine state changes.
	RoleOperator Role = "operator"
	// RolePHI sees patient-identifying data: names, MRNs, accession
	// numbers, study UIDs.
	RolePHI Role = "phi"
)

// Roles lists every role radgate knows, in the order messages name them.
var Roles = []Role{RoleViewer, RoleOperator, RolePHI}

// ParseRole reads a role name (exact, lower case).
func ParseRole(s string) (Role, bool) {
	r := Role(s)
	return r, slices.Contains(Roles, r)
}

func roleNames(rs []Role) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = string(r)
	}
	return strings.Join(parts, ", ")
}

// Principal is the authenticated caller of a request: the name the log
// shows (a static token's name or a JWT's sub) and its roles.
type Principal struct {
	// Name identifies the caller in logs and messages; never a secret.
	Name string
	// Roles are the roles granted to the caller, in the order of Roles,
	// without duplicates. Viewer is implied whether listed or not.
	Roles []Role
}

func newPrincipal(name string, roles ...Role) Principal {
	p := Principal{Name: name}
	for _, r := range Roles {
		if slices.Contains(roles, r) {
			p.Roles = append(p.Roles, r)
		}
	}
	return p
}

// allRoles is the principal of an intake without authentication (mode
// none, which is only allowed on loopback or behind required client
// certificates): whoever reaches it may do everything.
func allRoles(name string) Principal { return newPrincipal(name, Roles...) }

// Has reports whether the principal has role r. Every principal is a
// viewer.
func (p Principal) Has(r Role) bool {
	return r == RoleViewer || slices.Contains(p.Roles, r)
}

// RoleList names the principal's roles for messages ("viewer, phi").
func (p Principal) RoleList() string {
	rs := []Role{RoleViewer}
	for _, r := range p.Roles {
		if r != RoleViewer {
			rs = append(rs, r)
		}
	}
	return roleNames(rs)
}

type principalKey struct{}

// ContextWithPrincipal returns ctx carrying p. The middleware puts the
// authenticated caller there; tests of handlers may too.
func ContextWithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the authenticated caller of a request. ok is false
// when the request did not pass through the middleware: callers must then
// grant nothing beyond what needs no role.
func PrincipalFrom(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// HasRole reports whether the request's authenticated caller has role r;
// false when the request carries no principal.
func HasRole(r *http.Request, role Role) bool {
	p, ok := PrincipalFrom(r.Context())
	return ok && p.Has(role)
}

// RequireRole lets a request through only when its caller has role;
// anything else is answered 403 with an OperationOutcome naming the role
// needed. Put it inside the middleware (which sets the principal).
func RequireRole(role Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !Allowed(w, r, role) {
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Allowed is RequireRole for a handler that decides itself: it reports
// whether the caller has role and, when not, has answered 403.
func Allowed(w http.ResponseWriter, r *http.Request, role Role) bool {
	p, ok := PrincipalFrom(r.Context())
	if ok && p.Has(role) {
		return true
	}
	msg := fmt.Sprintf("%s %s needs the role %s; the request carries no authenticated caller", r.Method, r.URL.Path, role)
	if ok {
		msg = fmt.Sprintf("%s %s needs the role %s; caller %q has: %s", r.Method, r.URL.Path, role, p.Name, p.RoleList())
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write(fhir.NewOutcome(fhir.SeverityError, fhir.IssueCode("forbidden"), msg).JSON())
	return false
}
