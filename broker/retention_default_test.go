package broker

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
)

// The defaults radgate.yaml documents are the broker's own.
func TestDefaultRetentionIsTheBrokers(t *testing.T) {
	c, b := config.DefaultRetention(), DefaultRetention()
	for _, p := range []struct {
		c config.StoreLimits
		b Limits
	}{
		{c.OrderEvents, b.OrderEvents}, {c.Jobs, b.Jobs}, {c.Results, b.Results}, {c.DLQ, b.DLQ},
		{c.OrderState, b.OrderState}, {c.Heatmaps, b.Heatmaps},
	} {
		require.Equal(t, p.b, Limits{MaxAge: p.c.MaxAge.D(), MaxBytes: int64(p.c.MaxBytes)})
	}
	require.Zero(t, c.Usage, "usage is kept forever unless set")
	require.Equal(t, 90*config.Day, c.HL7Outbox.MaxAge)
}
