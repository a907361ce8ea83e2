package pipeline

import (
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"

	"github.com/stretchr/testify/require"
)

func TestUsageCountsEachResultOnce(t *testing.T) {
	h := newIdleHarness(t, nil)
	u := h.usage
	nov := time.Date(2026, 11, 27, 23, 59, 0, 0, time.UTC)
	for _, c := range []struct {
		id, engine, facility string
		at                   time.Time
		counted              bool
	}{
		{"r1", "eng-a", "St Mary's Hospital", nov, true},
		{"r1", "eng-a", "St Mary's Hospital", nov, false}, // redelivered
		{"r2", "eng-a", "St Mary's Hospital", nov.Add(-48 * time.Hour), true},
		{"r3", "eng-b", "St Mary's Hospital", nov, true},
		{"r4", "eng-a", "Clinic 2", nov, true},
		{"r5", "eng-a", "", nov, true},
		{"r6", "eng-a", "Clinic 2", time.Date(2026, 12, 1, 0, 1, 0, 0, time.UTC), true}, // December
	} {
		got, err := u.Count(t.Context(), c.id, c.engine, c.facility, c.at)
		require.NoError(t, err)
		require.Equal(t, c.counted, got, c.id)
	}
	rows, err := u.Month(t.Context(), "2026-11")
	require.NoError(t, err)
	require.Equal(t, []billing.UsageRow{
		{Facility: billing.UnknownFacility, Engine: "eng-a", Analyses: 1},
		{Facility: "Clinic 2", Engine: "eng-a", Analyses: 1},
		{Facility: "St Mary's Hospital", Engine: "eng-a", Analyses: 2},
		{Facility: "St Mary's Hospital", Engine: "eng-b", Analyses: 1},
	}, rows)
	dec, err := u.Month(t.Context(), "2026-12")
	require.NoError(t, err)
	require.Equal(t, []billing.UsageRow{{Facility: "Clinic 2", Engine: "eng-a", Analyses: 1}}, dec)
	_, err = u.Month(t.Context(), "November")
	require.ErrorContains(t, err, "want YYYY-MM")
}

// Scored results are billed by the pipeline; a study no engine may score is not.
func TestPipelineBillsScoredAnalysesOnly(t *testing.T) {
	h := newHarness(t, nil)
	h.arch.add("U1", "6.1", "CR", "CHEST", "sop-1")
	h.arch.add("U2", "6.2", "CR", "HIP", "sop-1")
	for _, acsn := range []string{"U1", "U2"} {
		ev := sr(acsn, "u-"+acsn)
		ev.Facility = "Radiology North"
		st, err := h.p.Accept(t.Context(), ev)
		require.NoError(t, err)
		h.waitTerminal(t, st.ID)
	}
	rows, err := h.usage.Month(t.Context(), time.Now().UTC().Format("2006-01"))
	require.NoError(t, err)
	require.Equal(t, []billing.UsageRow{{Facility: "Radiology North", Engine: "eng-a", Analyses: 1}}, rows)
}

func (h *harness) waitTerminal(t *testing.T, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := h.p.Status(t.Context(), id)
		return err == nil && st.State.Terminal()
	}, 10*time.Second, 20*time.Millisecond)
}

// An order is attributed to the configured facility its organisation names:
// usage is counted under the facility id, and the order shows it.
func TestPipelineAttributesOrdersToFacilities(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Facilities = radgate.NewFacilities([]config.Facility{
			{ID: "north", Name: "Radiology North", HL7Facilities: []string{"RADNORTH"}},
			{ID: "south", Name: "Radiology South"},
		})
	})
	h.arch.add("F1", "7.1", "CR", "CHEST", "sop-1")
	h.arch.add("F2", "7.2", "CR", "CHEST", "sop-1")
	h.arch.add("F3", "7.3", "CR", "CHEST", "sop-1")
	for acsn, facility := range map[string]string{"F1": "radnorth", "F2": "Radiology South", "F3": "Elsewhere"} {
		ev := sr(acsn, "f-"+acsn)
		ev.Facility = facility
		st, err := h.p.Accept(t.Context(), ev)
		require.NoError(t, err)
		h.waitTerminal(t, st.ID)
		st, err = h.p.Status(t.Context(), st.ID)
		require.NoError(t, err)
		want := map[string]string{"F1": "north", "F2": "south", "F3": ""}[acsn]
		require.Equal(t, want, st.FacilityID, acsn)
	}
	// The inference stage counts an analysis just after it records the
	// engine scored, so delivery can end the order first: wait for the
	// count rather than read it once.
	want := []billing.UsageRow{
		{Facility: "Elsewhere", Engine: "eng-a", Analyses: 1},
		{Facility: "north", Engine: "eng-a", Analyses: 1},
		{Facility: "south", Engine: "eng-a", Analyses: 1},
	}
	var rows []billing.UsageRow
	require.Eventually(t, func() bool {
		var err error
		rows, err = h.usage.Month(t.Context(), time.Now().UTC().Format("2006-01"))
		return err == nil && len(rows) >= len(want)
	}, 15*time.Second, 20*time.Millisecond, "usage rows: %v", rows)
	require.Equal(t, want, rows)
}

// radgate never stores a patient's name: a FHIR subject's display text
// reaches neither the order state nor the ORDERS stream.
func TestAcceptDropsThePatientName(t *testing.T) {
	h := newIdleHarness(t, nil)
	ev := sr("N1", "n-1")
	ev.Patient = &radgate.Reference{Reference: "Patient/p9", Display: "Zyxwa Testpatient",
		Identifier: &radgate.Identifier{System: "urn:mrn", Value: "MRN-9"}}
	st, err := h.p.Accept(t.Context(), ev)
	require.NoError(t, err)
	require.Equal(t, "Patient/p9", st.Patient.Reference)
	require.Empty(t, st.Patient.Display)
	require.Equal(t, "Zyxwa Testpatient", ev.Patient.Display, "the caller's event is not changed")
	s, err := h.topo.JS.Stream(t.Context(), broker.StreamOrders)
	require.NoError(t, err)
	m, err := s.GetLastMsgForSubject(t.Context(), broker.OrderSubject(radgate.PriorityRoutine, broker.NoFacility, "fhir"))
	require.NoError(t, err)
	require.NotContains(t, string(m.Data), "Zyxwa")
	require.Contains(t, string(m.Data), "Patient/p9")
}
