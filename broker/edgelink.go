package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// LinkStatusSubject is where radgate serve in role edge answers, on its
// embedded server, with its leaf links (LeafLinks as JSON): radgate check
// --connect asks it there. No site may subscribe to it on the hub
// (PermissionsFor), so the request never crosses the link.
const LinkStatusSubject = "radgate.edge.link"

// ServeLinkStatus answers LinkStatusSubject on nc with e's leaf links,
// until the subscription it returns is unsubscribed.
func (e *EmbeddedServer) ServeLinkStatus(nc *nats.Conn) (*nats.Subscription, error) {
	return nc.Subscribe(LinkStatusSubject, func(m *nats.Msg) {
		links, err := e.LeafLinks()
		if err != nil {
			_ = m.Respond([]byte(`{"error":` + jsonString(err.Error()) + `}`))
			return
		}
		b, _ := json.Marshal(linkStatus{Links: links})
		_ = m.Respond(b)
	})
}

type linkStatus struct {
	Links []LeafLink `json:"links"`
	Error string     `json:"error,omitempty"`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ErrLinkDown is RequestLinkStatus's error when the edge has no leaf link.
var ErrLinkDown = errors.New("no leaf link to the hub: the link is down (orders are kept and flow when it is back)")

// RequestLinkStatus asks the radgate serve (role edge) behind nc for its
// leaf links: ErrLinkDown when it has none.
func RequestLinkStatus(ctx context.Context, nc *nats.Conn) ([]LeafLink, error) {
	m, err := nc.RequestWithContext(ctx, LinkStatusSubject, nil)
	if err != nil {
		return nil, fmt.Errorf("radgate serve (role edge) did not answer on %s: %w", LinkStatusSubject, err)
	}
	var st linkStatus
	if err := json.Unmarshal(m.Data, &st); err != nil {
		return nil, fmt.Errorf("the edge's link status: %w", err)
	}
	if st.Error != "" {
		return nil, errors.New(st.Error)
	}
	if len(st.Links) == 0 {
		return nil, ErrLinkDown
	}
	return st.Links, nil
}
