package hl7v2

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStoredMessageState(t *testing.T) {
	for _, tc := range []struct {
		m              StoredMessage
		state, problem string
		failed         bool
	}{
		{StoredMessage{}, StateStored, "", false},
		{StoredMessage{AckCode: AA}, StateAcknowledged, "", false},
		{StoredMessage{AckCode: CA, LastError: ""}, StateAcknowledged, "", false},
		{StoredMessage{AckCode: AE, AckError: "ERR|PID-3 unknown"}, StateRefused, "ERR|PID-3 unknown", true},
		{StoredMessage{LastError: "dial tcp: connection refused"}, StateFailing, "dial tcp: connection refused", true},
	} {
		require.Equal(t, tc.state, tc.m.State(), "%+v", tc.m)
		require.Equal(t, tc.failed, tc.m.Failed(), "%+v", tc.m)
		require.Equal(t, tc.problem, tc.m.Problem(), "%+v", tc.m)
	}
}

func TestResendToNeedsAPositiveTimeout(t *testing.T) {
	_, _, err := (&Outbox{}).ResendTo(t.Context(), "r1", "ris:2575", 0)
	require.ErrorContains(t, err, "re-send timeout 0s: must be positive")
	_, _, err = (&Outbox{}).ResendTo(t.Context(), "r1", "ris:2575", -time.Second)
	require.Error(t, err)
}
