package service

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
)

func TestWaitForOverrides(t *testing.T) {
	cfg := config.Default()
	cfg.Facilities = []config.Facility{{ID: "north", Name: "North Hospital", FHIROrganizations: []string{"Organization/north"}}}
	cfg.Orders.StudyWaitOverrides = []config.WaitOverride{
		{Priority: "urgent", Wait: config.Duration(6 * time.Hour)},
		{Facility: "north", Procedure: "36643-5", Wait: config.Duration(24 * time.Hour)},
	}
	f := waitFor(&cfg, radgate.NewFacilities(cfg.Facilities))
	chest := []radgate.Coding{{System: "http://loinc.org", Code: "36643-5"}}
	require.Equal(t, 6*time.Hour, f(radgate.OrderStatus{Priority: "stat"}))
	require.Equal(t, 6*time.Hour, f(radgate.OrderStatus{Priority: "S", Facility: "Organization/north", ProcedureCodes: chest}), "first match wins")
	require.Equal(t, 24*time.Hour, f(radgate.OrderStatus{Priority: "routine", Facility: "Organization/north", ProcedureCodes: chest}))
	require.Zero(t, f(radgate.OrderStatus{Facility: "Organization/north"}), "procedure code must match too")
	require.Zero(t, f(radgate.OrderStatus{ProcedureCodes: chest}), "facility must match too")
	require.Equal(t, time.Duration(-1), stableAfter(0), "0 in radgate.yaml: score at once")
	require.Equal(t, time.Minute, stableAfter(time.Minute))
}
