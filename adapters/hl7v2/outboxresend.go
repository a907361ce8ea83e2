package hl7v2

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNoDestination: a stored message records no destination and none was
// given to re-send it to.
var ErrNoDestination = errors.New("no destination is recorded")

// States of a stored message (StoredMessage.State).
const (
	// StateAcknowledged: the RIS answered AA (or CA).
	StateAcknowledged = "acknowledged"
	// StateRefused: the RIS answered with another code (AE, AR, …).
	StateRefused = "refused"
	// StateFailing: the last send got no answer (LastError says why).
	StateFailing = "not acknowledged"
	// StateStored: stored, no send has ended yet.
	StateStored = "stored"
)

// State says where a stored message stands: acknowledged, refused, not
// acknowledged (the last try failed) or stored (no try ended yet).
func (m StoredMessage) State() string {
	switch {
	case m.AckCode.Accepted():
		return StateAcknowledged
	case m.AckCode != "":
		return StateRefused
	case m.LastError != "":
		return StateFailing
	}
	return StateStored
}

// Failed reports whether the message was refused or its last send failed.
func (m StoredMessage) Failed() bool {
	s := m.State()
	return s == StateRefused || s == StateFailing
}

// Problem is the message's last error: the ACK's errors when it was
// refused, else why the last send failed ("" when neither).
func (m StoredMessage) Problem() string {
	if m.AckError != "" && !m.AckCode.Accepted() {
		return m.AckError
	}
	return m.LastError
}

// ResendTo re-sends the message stored under key as `radgate hl7 resend`
// does (and the console's "Re-send selected"): unchanged (same MSH-10), to
// addr or, when addr is "", to the destination it was sent to
// (ErrNoDestination when none is recorded); one try, waiting timeout for
// the connection (at most DefaultDialTimeout) and the ACK. It returns the
// updated record and the address it was sent to.
func (o *Outbox) ResendTo(ctx context.Context, key, addr string, timeout time.Duration) (StoredMessage, string, error) {
	if timeout <= 0 {
		return StoredMessage{}, addr, fmt.Errorf("hl7v2: re-send timeout %s: must be positive", timeout)
	}
	if addr == "" {
		m, _, err := o.Get(ctx, key)
		if err != nil {
			return m, "", err
		}
		if addr = m.Destination; addr == "" {
			return m, "", fmt.Errorf("result %s: %w", key, ErrNoDestination)
		}
	}
	m, err := o.Resend(ctx, key, addr, ClientOptions{
		DialTimeout: min(timeout, DefaultDialTimeout), AckTimeout: timeout, MaxAttempts: 1,
	})
	return m, addr, err
}
