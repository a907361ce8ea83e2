package pipeline

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/routing"
)

func loadRoutes(t *testing.T, src string) *routing.Set {
	t.Helper()
	s, err := routing.Load("routes.yaml", []byte(src), routing.Registry{Engines: []string{"eng-a"}, Destinations: []string{"fhir", "pacs", "ris"}})
	require.NoError(t, err)
	return s
}

// A result goes to every destination of its route, each through its own
// consumer; the engine is delivered only when all of them have answered, and
// a destination that refuses for good fails the order, naming it.
func TestResultGoesToEveryDestinationOfItsRoute(t *testing.T) {
	pacs, ris := &recorder{}, &recorder{failFor: 1 << 30, failErr: errors.New("AE: unknown patient")}
	h := newHarness(t, func(o *Options) {
		o.Sinks["pacs"], o.Sinks["ris"] = pacs, ris
		o.Routes = loadRoutes(t, "routes:\n  - name: other\n    when: {modality: [CT]}\n    engines: [eng-a]\n    destinations: [ris]\n  - name: chest\n    engines: [eng-a]\n    destinations: [fhir, pacs]\n")
	})
	h.arch.add("R1", "7.1", "CR", "CHEST", "sop-1")
	st, err := h.p.Accept(t.Context(), sr("R1", "r1"))
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateDelivered)
	require.Equal(t, []string{"chest"}, st.Route.Routes)
	eng := st.Engines["eng-a"]
	require.Equal(t, radgate.StateDelivered, eng.Deliveries["fhir"].State)
	require.Equal(t, radgate.StateDelivered, eng.Deliveries["pacs"].State)
	require.NotContains(t, eng.Deliveries, "ris")
	require.Len(t, h.sink.results(), 1)
	require.Len(t, pacs.results(), 1)
	for _, r := range pacs.results() {
		require.Equal(t, "pacs", r.Destination)
		require.Equal(t, []string{"fhir", "pacs"}, r.Destinations)
	}

	// The CT route's only destination refuses: the order fails, naming it.
	h.arch.add("R2", "7.2", "CT", "CHEST", "sop-2")
	st, err = h.p.Accept(t.Context(), sr("R2", "r2"))
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateFailed)
	require.Contains(t, st.Reason, "delivering to ris: AE: unknown patient")
}

// An order no route matches is answered at the unmatched destinations with
// the reason, under the router's key; without unmatched destinations the
// order's status alone says so.
func TestUnmatchedOrderIsAnswered(t *testing.T) {
	for _, tc := range []struct {
		name, unmatched string
		answers         int
	}{
		{"to the unmatched destination", "unmatched:\n  destinations: [fhir]\n", 1},
		{"in the status only", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) {
				o.Routes = loadRoutes(t, "routes:\n  - name: chest\n    when: {body_part: [CHEST]}\n    engines: [eng-a]\n    destinations: [fhir]\n"+tc.unmatched)
			})
			h.arch.add("U1", "8.1", "CR", "HIP", "sop-1")
			st, err := h.p.Accept(t.Context(), sr("U1", "u1"))
			require.NoError(t, err)
			st = h.waitState(t, st.ID, radgate.StateRejected)
			require.False(t, st.Route.Matched)
			require.Contains(t, st.Reason, radgate.RouterEngine+": no route matches: modality CR, body part HIP")
			require.NotContains(t, st.Engines, "eng-a", "nothing was scored")
			time.Sleep(200 * time.Millisecond)
			require.Len(t, h.sink.results(), tc.answers)
			for _, r := range h.sink.results() {
				require.Equal(t, radgate.OutcomeNotApplicable, r.Outcome)
				require.Equal(t, radgate.RouterEngine, r.Engine.ID)
				require.NotEmpty(t, r.Engine.Disclaimer)
			}
		})
	}
}

// The decision is made once: routes swapped in after an order was routed do
// not change it, while new orders follow the new routes. The read request
// travels with the result.
func TestRouteDecisionIsKeptAcrossReload(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Routes = loadRoutes(t, "routes:\n  - name: v1\n    engines: [eng-a]\n    destinations: [fhir]\n    read: {request: always, group: CareTeam/readers}\n")
	})
	h.arch.add("K1", "9.1", "CR", "CHEST", "sop-1")
	first, err := h.p.Accept(t.Context(), sr("K1", "k1"))
	require.NoError(t, err)
	first = h.waitState(t, first.ID, radgate.StateDelivered)
	require.Equal(t, []string{"v1"}, first.Route.Routes)
	for _, r := range h.sink.results() {
		require.True(t, r.Read.Wanted(r.Tier), "the route asked for a read")
		require.Equal(t, "CareTeam/readers", r.Read.Group)
	}

	h.p.SetRoutes(loadRoutes(t, "routes:\n  - name: v2\n    engines: [eng-a]\n    destinations: [fhir]\n"), nil)
	// The first order's event again: already decided, nothing re-routed.
	_, err = h.p.Accept(t.Context(), sr("K1", "k1-again"))
	require.NoError(t, err)
	h.arch.add("K2", "9.2", "CR", "CHEST", "sop-2")
	second, err := h.p.Accept(t.Context(), sr("K2", "k2"))
	require.NoError(t, err)
	second = h.waitState(t, second.ID, radgate.StateDelivered)
	require.Equal(t, []string{"v2"}, second.Route.Routes)
	require.Nil(t, second.Route.Read)
	again, err := h.p.Status(t.Context(), first.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"v1"}, again.Route.Routes)
	require.Len(t, h.sink.results(), 2, "one result per order")
}

func TestFactsFromOrderAndStudy(t *testing.T) {
	st := radgate.OrderStatus{Facility: "General Hospital", Priority: "STAT", Modalities: []string{"dx"},
		ProcedureCodes: []radgate.Coding{{System: "http://loinc.org", Code: "36643-5"}}}
	study := &radgate.Study{InstitutionName: "GH Radiology", Series: []radgate.Series{
		{Modality: "DX", BodyPartExamined: "chest", Instances: []radgate.Instance{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.1.1"}}},
		{Modality: "CR", Instances: []radgate.Instance{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.1"}}}, // body part from the procedure code
	}}
	f := Facts(st, study)
	require.Equal(t, []string{"DX", "CR"}, f.Modalities)
	require.Equal(t, []string{"CHEST"}, f.BodyParts)
	require.Equal(t, []string{"1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1"}, f.SOPClasses)
	require.Equal(t, []string{"General Hospital", "GH Radiology"}, f.Facilities)
	require.Equal(t, "stat", f.Priority)
	require.Equal(t, []routing.Code{{System: "http://loinc.org", Code: "36643-5"}}, f.ProcedureCodes)
}

// pictureSink is a recorder that says which pictures it shows.
type pictureSink struct {
	*recorder
	shows radgate.Pictures
}

func (s pictureSink) Pictures() radgate.Pictures { return s.shows }

// The inference stage draws only the pictures the order's destinations
// show, once per result, and each destination reads only its own.
func TestPicturesAreDrawnForTheDestinationsThatShowThem(t *testing.T) {
	fhirSink := pictureSink{&recorder{}, radgate.PicturePreview | radgate.PictureThumbnail}
	pacs := pictureSink{&recorder{}, radgate.PictureHeatmap}
	h := newHarness(t, func(o *Options) {
		o.Sinks["fhir"], o.Sinks["pacs"] = fhirSink, pacs
		o.Routes = loadRoutes(t, "routes:\n  - name: chest\n    engines: [eng-a]\n    destinations: [fhir, pacs]\n")
	})
	one := func(r *recorder) radgate.Result {
		t.Helper()
		got := r.results()
		require.Len(t, got, 1)
		for _, x := range got {
			return x
		}
		return radgate.Result{}
	}

	h.arch.add("P1", "9.1", "CR", "CHEST", "sop-1") // 0.91: marked
	st, err := h.p.Accept(t.Context(), sr("P1", "p1"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	f, p := one(fhirSink.recorder), one(pacs.recorder)
	require.Equal(t, []byte("JPEG preview"), f.Preview, "the FHIR destination reads the preview")
	require.Empty(t, f.HeatmapPNG, "and not the full-size heatmap")
	require.Equal(t, []byte("\x89PNG fake"), p.HeatmapPNG, "the PACS reads the full-size heatmap")
	require.Empty(t, p.Preview, "and not the preview")

	h.arch.add("P3", "9.3", "DX", "CHEST", "sop-3") // 0.40: not marked
	st, err = h.p.Accept(t.Context(), sr("P3", "p3"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	for _, x := range fhirSink.results() {
		if x.SOPInstanceUID == "sop-3" {
			require.Equal(t, []byte("JPEG thumbnail"), x.Preview, "an unmarked result's thumbnail")
			require.Empty(t, x.HeatmapObject)
		}
	}
}

// A destination that shows no picture costs no drawing.
func TestNoPictureForADestinationThatShowsNone(t *testing.T) {
	ris := pictureSink{&recorder{}, 0}
	h := newHarness(t, func(o *Options) {
		o.Sinks["ris"] = ris
		o.Routes = loadRoutes(t, "routes:\n  - name: chest\n    engines: [eng-a]\n    destinations: [ris]\n")
	})
	h.arch.add("P2", "9.2", "CR", "CHEST", "sop-1") // 0.91: marked
	st, err := h.p.Accept(t.Context(), sr("P2", "p2"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	got := ris.results()
	require.Len(t, got, 1)
	for _, r := range got {
		require.True(t, r.Marked)
		require.Empty(t, r.Preview)
		require.Empty(t, r.HeatmapPNG)
		require.Empty(t, r.PreviewObject, "nothing was drawn")
		require.Empty(t, r.HeatmapObject, "nothing was drawn")
	}
}
