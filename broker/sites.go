package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// Hub and edges (issue 16): the hub is a NATS JetStream cluster in domain
// HubDomain with a leafnode listener; each site runs an edge, a radgate
// whose embedded nats-server is a leaf node of the hub in its own domain
// (EdgeDomain), connected with the site's NKey user. Work crosses the leaf
// link only through JetStream sourcing, so that it is stored and forwarded:
// the hub's RADGATE_JOBS stream sources every edge's RADGATE_JOBS
// (HubJobsSource), each edge's RADGATE_RESULTS sources the hub's, filtered
// on its facility (EdgeResultsSource). Each source delivers on its own
// subject prefix (LinkPrefix) that only its site may use (SitePermissions).

// HubDomain is the JetStream domain of the hub cluster.
const HubDomain = "hub"

// EdgeDomain is the JetStream domain of facility's edge: "edge-" and the
// facility as a subject token.
func EdgeDomain(facility string) string { return "edge-" + Token(facility) }

// LinkPrefix is the subject prefix the sourcing consumers of facility's
// edge deliver on (jobs: edge → hub; results: hub → edge).
func LinkPrefix(facility string) string { return "radgate.link." + Token(facility) }

// JobsFilter is the subjects of facility's jobs (JobSubject:
// radgate.jobs.<class>.<facility>.<engine>).
func JobsFilter(facility string) string { return FacilitySubjects(facility)[1] }

// ResultsFilter is the subjects of facility's results (ResultSubject:
// radgate.results.<dest>.<class>.<facility>.<engine>).
func ResultsFilter(facility string) string { return FacilitySubjects(facility)[2] }

// A source without a start begins, the first time, at the sourcing
// stream's last message time: jobs an edge filed before the hub first
// reached it (its link down, or the source declared late) would be
// skipped. So every link source starts at sequence 1 the first time, and
// from where it stopped after that (JetStream keeps its position).

// HubJobsSource is the source, on the hub's RADGATE_JOBS, of facility's
// edge's RADGATE_JOBS: only that facility's jobs are taken, so an edge
// cannot file work for another site.
func HubJobsSource(facility string) *jetstream.StreamSource {
	return &jetstream.StreamSource{
		Name: StreamJobs, FilterSubject: JobsFilter(facility), OptStartSeq: 1,
		External: &jetstream.ExternalStream{
			APIPrefix:     "$JS." + EdgeDomain(facility) + ".API",
			DeliverPrefix: LinkPrefix(facility) + ".jobs",
		},
	}
}

// EdgeResultsSource is the source, on facility's edge's RADGATE_RESULTS,
// of the hub's RADGATE_RESULTS filtered on the facility.
func EdgeResultsSource(facility string) *jetstream.StreamSource {
	return &jetstream.StreamSource{
		Name: StreamResults, FilterSubject: ResultsFilter(facility), OptStartSeq: 1,
		External: &jetstream.ExternalStream{
			APIPrefix:     "$JS." + HubDomain + ".API",
			DeliverPrefix: LinkPrefix(facility) + ".results",
		},
	}
}

// EnsureEdgeSource makes an edge's RADGATE_RESULTS source the hub's
// results of facility. Idempotent.
func EnsureEdgeSource(ctx context.Context, js jetstream.JetStream, facility string) error {
	return setSources(ctx, js, StreamResults, []*jetstream.StreamSource{EdgeResultsSource(facility)},
		func(s *jetstream.StreamSource) bool { return s.Name == StreamResults && s.External != nil })
}

// setSources replaces the sources of stream that ours says are radgate's
// link sources by want, and updates the stream when that changes them.
func setSources(ctx context.Context, js jetstream.JetStream, stream string, want []*jetstream.StreamSource,
	ours func(*jetstream.StreamSource) bool) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	cfg := info.Config
	var kept []*jetstream.StreamSource
	for _, src := range cfg.Sources {
		if !ours(src) {
			kept = append(kept, src)
		}
	}
	next := append(kept, want...)
	if sameSources(cfg.Sources, next) {
		return nil
	}
	cfg.Sources = next
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("setting the sources of stream %s: %w", stream, err)
	}
	return nil
}

func sameSources(a, b []*jetstream.StreamSource) bool {
	key := func(s *jetstream.StreamSource) string {
		k := s.Name + "|" + s.FilterSubject
		if s.External != nil {
			k += "|" + s.External.APIPrefix + "|" + s.External.DeliverPrefix
		}
		return k
	}
	if len(a) != len(b) {
		return false
	}
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// SitePermissions are what a site's NKey user may publish (towards the
// hub) and subscribe to (receive from the hub), the same whether it
// connects as a leaf node or as a client: the JetStream API of its own
// domain (the hub's sourcing of its jobs, the hub's inference reading its
// image store), its own link subjects, the consumer create of its results
// source — filtered on its facility, which the JetStream API checks
// against the consumer's filter — and the replies and flow control that
// sourcing and requests into its domain need (allow_responses does not
// carry over a leaf link: the hub only propagates interest the leaf may
// publish to). What one site can still see of another is the reply to the
// consumer create of the other's results source (consumer info, no
// message), and flow control. No radgate.orders/jobs/results subject crosses the link
// directly: work travels only through the sources, stored at both ends.
type SitePermissions struct {
	Publish, Subscribe []string
}

// PermissionsFor is facility's SitePermissions.
func PermissionsFor(facility string) SitePermissions {
	link := LinkPrefix(facility)
	return SitePermissions{
		Publish: []string{
			link + ".jobs.>",
			// The hub checks a request to its own domain on the subject it
			// maps it to, $JS.API…; the domain's form for a hop beyond.
			"$JS.API.CONSUMER.CREATE." + StreamResults + ".*." + ResultsFilter(facility),
			"$JS." + HubDomain + ".API.CONSUMER.CREATE." + StreamResults + ".*." + ResultsFilter(facility),
			// Replies to the hub's source requests into the site's domain
			// (scoped by domain: FeatureFlags), and the flow control of
			// its results source.
			"$JSC.R." + EdgeDomain(facility) + ".>",
			"$JS.FC." + StreamResults + ".>",
			// Replies to the hub's own requests into the site's domain (the
			// inference stage reading its image store): a leaf forwards a
			// reply only to interest the hub may send it, and a hub
			// process's inbox is random, never subscribable by a site.
			"_INBOX.>",
		},
		Subscribe: []string{
			"$JS." + EdgeDomain(facility) + ".API.>",
			link + ".results.>",
			"$JSC.R." + HubDomain + ".*." + StreamResults + ".>",
			"$JS.FC." + StreamJobs + ".>",
		},
	}
}

// FeatureFlags are the nats-server feature flags of the hub nodes and the
// edges. js_api_reply_v2 puts the requesting stream's domain in the reply
// subject of a source's API requests ($JSC.R.<domain>.…), so that a site
// may answer only the requests into its own domain; js_snapshot_sources
// keeps a stream's sourcing positions in its replicated snapshot, so a hub
// replica that becomes leader after the sourced jobs were consumed (the
// hub's RADGATE_JOBS is a work queue) does not source them again (every
// hub node must run nats-server 2.15 or later).
var FeatureFlags = map[string]bool{"js_api_reply_v2": true, "js_snapshot_sources": true}

func featureFlagsBlock() string {
	keys := make([]string, 0, len(FeatureFlags))
	for k := range FeatureFlags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %v", k, FeatureFlags[k])
	}
	return "feature_flags { " + strings.Join(parts, ", ") + " }\n"
}

// Site is one facility's edge as the hub knows it: its facility id and
// its NKey user's public key.
type Site struct {
	Facility  string
	PublicKey string
}

// HubAuthorization is the authorization block of the hub's nats-server
// configuration: the hub's own user (radgate hub processes and operators;
// every subject) and one user per site with PermissionsFor its facility.
// A leafnodes block without an authorization of its own authenticates
// leaf nodes against it, so a site's edge and a site's client get the same
// permissions.
func HubAuthorization(hubKey string, sites []Site) (string, error) {
	var b strings.Builder
	b.WriteString("authorization {\n  users: [\n")
	fmt.Fprintf(&b, "    { nkey: %s }  # radgate hub\n", hubKey)
	seen := map[string]string{}
	for _, s := range sites {
		if s.Facility == "" || s.PublicKey == "" {
			return "", errors.New("a site needs a facility and a public key")
		}
		t := Token(s.Facility)
		if other, dup := seen[t]; dup {
			return "", fmt.Errorf("facilities %q and %q are the same subject token %q", other, s.Facility, t)
		}
		seen[t] = s.Facility
		p := PermissionsFor(s.Facility)
		fmt.Fprintf(&b, "    { nkey: %s, permissions: {  # site %s\n", s.PublicKey, strconv.Quote(s.Facility))
		fmt.Fprintf(&b, "        publish: { allow: [%s] }\n", quoteAll(p.Publish))
		fmt.Fprintf(&b, "        subscribe: { allow: [%s] }\n", quoteAll(p.Subscribe))
		b.WriteString("      } }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String(), nil
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// SiteCredentialPath is where radgate sites nats-config writes facility's
// NKey seed in dir.
func SiteCredentialPath(dir, facility string) string {
	return filepath.Join(dir, "site-"+Token(facility)+".nk")
}

// HubCredentialPath is where radgate sites nats-config writes the hub's
// NKey seed in dir.
func HubCredentialPath(dir string) string { return filepath.Join(dir, "hub.nk") }

func (l *LeafRemote) options() (*server.RemoteLeafOpts, error) {
	if len(l.URLs) == 0 {
		return nil, errors.New("leaf node: no hub URL")
	}
	r := &server.RemoteLeafOpts{}
	for _, s := range l.URLs {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("leaf node: hub URL %q is not nats-leaf://host:port", s)
		}
		r.URLs = append(r.URLs, u)
	}
	if l.Credential != nil {
		seed, err := l.Credential.kp.Seed()
		if err != nil {
			return nil, fmt.Errorf("leaf node: credential %s: %w", l.Credential.Path(), err)
		}
		r.Nkey = string(seed)
	}
	return r, nil
}

// LeafLink is one leaf connection as its server sees it.
type LeafLink struct {
	// Name is the server at the other end.
	Name string
	// Addr is the other end's address.
	Addr string
	// RTT is the last measured round trip ("" before the first).
	RTT string
	// InBytes and OutBytes are what crossed the link since it was made,
	// as this server counts them.
	InBytes, OutBytes int64
	InMsgs, OutMsgs   int64
}

// LeafLinks lists the server's leaf connections: on an edge, its link to
// the hub (none while it is down).
func (e *EmbeddedServer) LeafLinks() ([]LeafLink, error) {
	lz, err := e.srv.Leafz(nil)
	if err != nil {
		return nil, err
	}
	var out []LeafLink
	for _, l := range lz.Leafs {
		out = append(out, LeafLink{Name: l.Name, Addr: fmt.Sprintf("%s:%d", l.IP, l.Port), RTT: l.RTT,
			InBytes: l.InBytes, OutBytes: l.OutBytes, InMsgs: l.InMsgs, OutMsgs: l.OutMsgs})
	}
	return out, nil
}

// Linked says whether the server has a leaf connection (on an edge: its
// link to the hub is up).
func (e *EmbeddedServer) Linked() bool { return e.srv.NumLeafNodes() > 0 }

// WaitLeaf waits until the server has a leaf connection, for at most within.
func (e *EmbeddedServer) WaitLeaf(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if e.Linked() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no leaf link within %v", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SiteConfig is what radgate sites nats-config made: the credential files
// and the hub's configuration to paste into every hub node.
type SiteConfig struct {
	// Hub is the hub's own credential (radgate hub processes connect with
	// it: nats.credentials_file is not for NKeys, see the README runbook).
	Hub *Credential
	// Sites are the sites' credentials by facility id, each to be copied
	// to its edge (mode 0600).
	Sites map[string]*Credential
	// HubConfig is the part of each hub node's nats-server configuration
	// it makes: the JetStream domain, the leafnode listener and NodeConfig.
	HubConfig string
	// NodeConfig is the hub nodes' feature flags (FeatureFlags) and
	// authorization block (HubAuthorization).
	NodeConfig string
}

// GenerateSites writes, in dir (made 0700 when missing), the hub's NKey
// user and one per facility (SiteCredentialPath, mode 0600; an existing
// file is kept, so running it again after adding a facility changes no
// other site's credential), and returns the hub nodes' configuration with
// leafListen as their leafnode listener (host:port).
func GenerateSites(dir string, facilities []string, leafListen string) (*SiteConfig, error) {
	if len(facilities) == 0 {
		return nil, errors.New("no facility: list the sites under facilities: in radgate.yaml")
	}
	if _, _, err := net.SplitHostPort(leafListen); err != nil {
		return nil, fmt.Errorf("leafnode listener %q: %w", leafListen, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	hub, err := LoadOrCreateCredential(HubCredentialPath(dir))
	if err != nil {
		return nil, err
	}
	sc := &SiteConfig{Hub: hub, Sites: map[string]*Credential{}}
	var sites []Site
	for _, f := range facilities {
		c, err := LoadOrCreateCredential(SiteCredentialPath(dir, f))
		if err != nil {
			return nil, err
		}
		sc.Sites[f] = c
		sites = append(sites, Site{Facility: f, PublicKey: c.PublicKey()})
	}
	auth, err := HubAuthorization(hub.PublicKey(), sites)
	if err != nil {
		return nil, err
	}
	sc.NodeConfig = featureFlagsBlock() + auth
	sc.HubConfig = fmt.Sprintf("# radgate hub: add to every hub node's nats-server configuration, beside\n"+
		"# server_name, listen and cluster (generated from %d facilities); and in\n"+
		"# the node's jetstream block: domain: %s\n"+
		"leafnodes { listen: %s }\n%s", len(facilities), HubDomain, leafListen, sc.NodeConfig)
	return sc, nil
}
