package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// The roles of radgate serve (issue 16, "Hub and edges" in ARCHITECTURE.md).
const (
	// RoleAll runs every stage in one process (or several against one
	// NATS): the default.
	RoleAll = "all"
	// RoleHub runs the inference stage on the hub's JetStream cluster
	// (nats.url), reading each job's images through its edge's domain.
	RoleHub = "hub"
	// RoleEdge runs a site: the intakes, the order store, the router and
	// the deliveries, on an embedded nats-server that is a leaf node of
	// the hub (the edge section).
	RoleEdge = "edge"
)

// Edge is a site's link to the hub (role: edge).
type Edge struct {
	// Facility is the site's facility id (one of facilities:): its jobs go
	// to the hub under it, and only its results come back.
	Facility string `yaml:"facility"`
	// HubURLs are the hub nodes' leafnode listeners
	// (nats-leaf://host:7422), any of which the edge's embedded server
	// connects to as a leaf node.
	HubURLs []string `yaml:"hub_urls"`
	// CredentialFile is the site's NKey seed from radgate sites
	// nats-config (site-<facility>.nk, mode 0600): the hub grants it the
	// site's subjects only.
	CredentialFile string `yaml:"credential_file"`
	// Domain is the edge's JetStream domain; empty: edge-<facility token>,
	// the one the hub's sources read (only change it together with them).
	Domain string `yaml:"domain"`
}

// validateRole checks role and the edge section against it.
func validateRole(c *Config, bad func(path, msg string), badAt func(at []string, path, msg string)) {
	missing := func(path, msg string) { badAt([]string{"edge", "role"}, path, msg) }
	switch c.Role {
	case RoleAll, RoleHub:
		if c.Role == RoleHub {
			if c.NATS.URL == "" {
				bad("role", "hub needs nats.url to name the hub's JetStream cluster (domain hub)")
			}
			// Orders come in at the edges; a hub has no intake.
			if c.HL7v2.Listen != "" {
				bad("hl7v2.listen", "must be empty for role hub: the order intakes run at the edges")
			}
			if c.DIMSE.Listen != "" {
				bad("dimse.listen", "must be empty for role hub: the order intakes run at the edges")
			}
		}
		if c.Edge.Facility != "" || len(c.Edge.HubURLs) > 0 || c.Edge.CredentialFile != "" || c.Edge.Domain != "" {
			bad("edge", fmt.Sprintf("is for role edge only (role is %s)", c.Role))
		}
		return
	case RoleEdge:
	default:
		bad("role", fmt.Sprintf("want all, hub or edge, got %q", c.Role))
		return
	}
	e := c.Edge
	if c.NATS.URL != "" {
		bad("nats.url", "must be empty for role edge: an edge runs its embedded server as a leaf node of the hub (edge.hub_urls)")
	}
	switch {
	case e.Facility == "":
		missing("edge.facility", "must name the site's facility id (role edge)")
	case !slices.ContainsFunc(c.Facilities, func(f Facility) bool { return f.ID == e.Facility }):
		bad("edge.facility", fmt.Sprintf("no facility has id %q (list the site under facilities:)", e.Facility))
	default:
		for i, f := range c.Facilities {
			if f.ID == e.Facility && !f.HasEdge() {
				bad(fmt.Sprintf("facilities.%d.edge", i), fmt.Sprintf("is false, but this radgate is facility %q's edge (role edge, edge.facility): the hub would not source its jobs", f.ID))
			}
		}
	}
	if len(e.HubURLs) == 0 {
		missing("edge.hub_urls", "must list the hub's leafnode listeners (nats-leaf://host:7422)")
	}
	for i, raw := range e.HubURLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" || (u.Scheme != "nats-leaf" && u.Scheme != "tls") {
			bad(fmt.Sprintf("edge.hub_urls.%d", i), fmt.Sprintf("%q is not a URL with scheme nats-leaf or tls and a host", raw))
		}
	}
	if e.CredentialFile == "" {
		missing("edge.credential_file", "must name the site's NKey seed (radgate sites nats-config: site-<facility>.nk)")
	}
	if e.Domain != "" && !domainRE.MatchString(e.Domain) {
		bad("edge.domain", fmt.Sprintf("%q: a JetStream domain is letters, digits, '-' and '_'", e.Domain))
	}
	if e.Domain == "hub" {
		bad("edge.domain", `"hub" is the hub's domain`)
	}
}

var domainRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
