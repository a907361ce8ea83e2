package dimse

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// orders is a radgate.Intake that records the events it accepts.
type orders struct {
	mu   sync.Mutex
	evs  []radgate.OrderEvent
	fail error
}

func (o *orders) Accept(_ context.Context, ev radgate.OrderEvent) (radgate.OrderStatus, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return radgate.OrderStatus{}, o.fail
	}
	o.evs = append(o.evs, ev)
	return radgate.OrderStatus{ID: "o" + ev.StudyInstanceUID}, nil
}

func (o *orders) Status(context.Context, string) (radgate.OrderStatus, error) {
	return radgate.OrderStatus{}, radgate.ErrOrderNotFound
}

func (o *orders) events() []radgate.OrderEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]radgate.OrderEvent(nil), o.evs...)
}

// scpRig is radgate's Storage SCP as serve builds it (Intake behind the
// Server) over a real image store.
type scpRig struct {
	addr   string
	arch   *Archive
	orders *orders
	logs   *lockedBuffer
}

func newSCP(t *testing.T, facilities []config.Facility, l ArchiveLimits, mutate func(*Intake, *Server)) *scpRig {
	t.Helper()
	r := &scpRig{arch: newArchive(t, l), orders: &orders{}, logs: &lockedBuffer{}}
	logger := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	in := &Intake{Archive: r.arch, Orders: r.orders, Facilities: radgate.NewFacilities(facilities),
		AccessionSystem: "urn:acsn", MaxInstanceBytes: 64 << 20, MinFreeBytes: 1 << 20, Logger: logger}
	srv := &Server{AETitle: "RADGATE", Accept: in.Accept, Store: in, MaxInstanceBytes: 64 << 20, Logger: logger}
	if mutate != nil {
		mutate(in, srv)
	}
	r.addr, _ = startServer(t, srv)
	return r
}

var ward = []config.Facility{{ID: "ward3", AETitles: []string{"CR_WARD3"}}}

func (r *scpRig) dial(t *testing.T, ae string, f part10) (*Association, error) {
	t.Helper()
	d := &Dialer{CallingAE: ae, CalledAE: "RADGATE", Timeout: 5 * time.Second}
	return d.Dial(t.Context(), r.addr, StoreContexts([]string{f.sopClass}, f.transferSyntax))
}

func (r *scpRig) store(t *testing.T, ae string, f part10) Status {
	t.Helper()
	as, err := r.dial(t, ae, f)
	require.NoError(t, err)
	defer as.Release(t.Context())
	st, err := as.Store(t.Context(), f.sopClass, f.sopInstance, f.transferSyntax, bytes.NewReader(f.dataset))
	require.NoError(t, err)
	return st
}

func TestIntakeStoresThenMakesOneOrderPerStudyAndAssociation(t *testing.T) {
	r := newSCP(t, ward, ArchiveLimits{MaxAge: time.Hour}, nil)
	f := readPart10(t, testenv.Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm"))
	as, err := r.dial(t, "CR_WARD3", f)
	require.NoError(t, err)
	// The same instance twice in one association: stored (again), one event.
	for range 2 {
		st, err := as.Store(t.Context(), f.sopClass, f.sopInstance, f.transferSyntax, bytes.NewReader(f.dataset))
		require.NoError(t, err)
		require.Equal(t, StatusSuccess, st)
	}
	require.NoError(t, as.Release(t.Context()))

	rec, err := RecordOf(mustRead(t, f.path))
	require.NoError(t, err)
	got, err := r.arch.RetrieveInstance(t.Context(), rec.StudyInstanceUID, "", rec.SOPInstanceUID)
	require.NoError(t, err)
	back, err := RecordOf(got)
	require.NoError(t, err, "the stored file reads back")
	assert.Equal(t, rec.SOPInstanceUID, back.SOPInstanceUID)
	recs, err := r.arch.Records(t.Context(), rec.StudyInstanceUID)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, "CR_WARD3", recs[0].CallingAE)

	evs := r.orders.events()
	require.Len(t, evs, 1, "one order event for the study in this association")
	ev := evs[0]
	assert.Equal(t, radgate.SourceDIMSE, ev.Source)
	assert.Equal(t, rec.StudyInstanceUID, ev.StudyInstanceUID)
	assert.Equal(t, &radgate.Identifier{System: "urn:acsn", Value: rec.AccessionNumber}, ev.Accession)
	assert.Equal(t, "ward3", ev.Facility)
	assert.Contains(t, ev.EventID, "dimse/")

	// A second association: a second event (the pipeline re-checks stability).
	require.Equal(t, StatusSuccess, r.store(t, "CR_WARD3", f))
	require.Len(t, r.orders.events(), 2)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	p := readPart10(t, path)
	var b bytes.Buffer
	require.NoError(t, WritePart10(&b, &StoreRequest{SOPClassUID: p.sopClass, SOPInstanceUID: p.sopInstance, TransferSyntaxUID: p.transferSyntax}, bytes.NewReader(p.dataset)))
	return b.Bytes()
}

func TestIntakeRejectsCallersOutsideTheFacilityList(t *testing.T) {
	facilities := []config.Facility{ward[0], {ID: "far", AETitles: []string{"FAR_CT"}, Networks: []string{"10.9.0.0/16"}}}
	r := newSCP(t, facilities, ArchiveLimits{MaxAge: time.Hour}, nil)
	f := readPart10(t, testenv.Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm"))
	for _, ae := range []string{"STRANGER", "FAR_CT"} { // unknown; known, from outside its networks
		_, err := r.dial(t, ae, f)
		var rj *RejectError
		require.ErrorAs(t, err, &rj, ae)
		assert.Equal(t, RejectCallingAENotRecognized, rj.Reject, ae)
	}
	assert.Contains(t, r.logs.String(), "calling AE title is not in the facility list")
	assert.Contains(t, r.logs.String(), "source address is not in the networks")
	require.Equal(t, StatusSuccess, r.store(t, "CR_WARD3", f), "a known caller is still served")
}

func TestIntakeRefusesNewAssociationsWhenStorageIsLow(t *testing.T) {
	f := readPart10(t, testenv.Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm"))
	size := int64(len(f.dataset)) + 1024
	r := newSCP(t, ward, ArchiveLimits{MaxAge: time.Hour, MaxBytes: 5 * size / 2}, func(in *Intake, _ *Server) { in.MinFreeBytes = 2 * size })
	require.Equal(t, StatusSuccess, r.store(t, "CR_WARD3", f))
	src := mustRead(t, f.path)
	clone, _, err := demo.Clone(src, 7)
	require.NoError(t, err)
	cf := part10FromBytes(t, clone)
	_, err = r.dial(t, "CR_WARD3", cf)
	var rj *RejectError
	require.ErrorAs(t, err, &rj)
	assert.Equal(t, RejectTemporaryCongestion, rj.Reject)
	assert.Contains(t, r.logs.String(), "image store is low on space")
	rec, err := RecordOf(clone)
	require.NoError(t, err)
	_, err = r.arch.RetrieveInstance(t.Context(), rec.StudyInstanceUID, "", rec.SOPInstanceUID)
	assert.ErrorIs(t, err, radgate.ErrStudyNotFound, "nothing of the refused instance is kept")
}

func part10FromBytes(t *testing.T, b []byte) part10 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.dcm")
	require.NoError(t, writeFile(path, b))
	return readPart10(t, path)
}

func TestIntakeRefusesWhatItCannotKeep(t *testing.T) {
	r := newSCP(t, ward, ArchiveLimits{MaxAge: time.Hour}, nil)
	f := readPart10(t, testenv.Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm"))

	// The command names another SOP instance than the data set holds.
	as, err := r.dial(t, "CR_WARD3", f)
	require.NoError(t, err)
	st, err := as.Store(t.Context(), f.sopClass, "1.2.3.4.5", f.transferSyntax, bytes.NewReader(f.dataset))
	require.NoError(t, err)
	assert.Equal(t, StatusDataSetDoesNotMatch, st)
	// Not a data set at all.
	st, err = as.Store(t.Context(), f.sopClass, "1.2.3.4.6", f.transferSyntax, bytes.NewReader([]byte("not a data set, some bytes")))
	require.NoError(t, err)
	assert.Equal(t, StatusCannotUnderstand, st)
	// The order cannot be recorded: a failure the sender retries.
	r.orders.mu.Lock()
	r.orders.fail = errors.New("JetStream unavailable")
	r.orders.mu.Unlock()
	st, err = as.Store(t.Context(), f.sopClass, f.sopInstance, f.transferSyntax, bytes.NewReader(f.dataset))
	require.NoError(t, err)
	assert.Equal(t, StatusOutOfResources, st)
	require.NoError(t, as.Release(t.Context()))
	assert.Empty(t, r.orders.events())
	_, err = r.arch.RetrieveInstance(t.Context(), "1.2.3.4", "", "1.2.3.4.5")
	assert.ErrorIs(t, err, radgate.ErrStudyNotFound)
	assert.NotContains(t, r.logs.String(), "not a data set", "no data in the logs")
}

func TestIntakeMakesNoOrderOfNonImages(t *testing.T) {
	r := newSCP(t, ward, ArchiveLimits{MaxAge: time.Hour}, nil)
	in := &Intake{Archive: r.arch, Orders: r.orders, Facilities: radgate.NewFacilities(ward)}
	err := in.order(t.Context(), AssociationInfo{ID: "a1", CallingAE: "CR_WARD3", Remote: &net.TCPAddr{}},
		InstanceRecord{StudyInstanceUID: "1.2.3", SOPInstanceUID: "1.2.3.4", Modality: "SR"})
	require.NoError(t, err)
	assert.Empty(t, r.orders.events(), "an SR pushed into a study makes no order")
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// TestIntakeMakesNoOrderOfWhatRadgateRetrieves: the C-STORE sub-operations
// of radgate's own C-MOVE (Move Originator AE title = radgate's) and
// anything the DIMSE-only PACS (PACSAETitles) sends are stored with no
// order; another originator's move (a workstation sending a study to
// radgate) is a push like any other. A PACS outside the facility list is
// admitted only when named in PACSAETitles.
func TestIntakeMakesNoOrderOfWhatRadgateRetrieves(t *testing.T) {
	var in *Intake
	r := newSCP(t, ward, ArchiveLimits{MaxAge: time.Hour}, func(i *Intake, _ *Server) { in = i; i.PACSAETitles = []string{"MAINPACS"} })
	f := readPart10(t, testenv.Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm"))
	rec, err := RecordOf(mustRead(t, f.path))
	require.NoError(t, err)
	store := func(calling, originator string) Status {
		rq := &StoreRequest{Association: AssociationInfo{ID: newAssocID(), CallingAE: calling, CalledAE: "RADGATE", Remote: &net.TCPAddr{}},
			SOPClassUID: f.sopClass, SOPInstanceUID: f.sopInstance, TransferSyntaxUID: f.transferSyntax, MoveOriginatorAE: originator}
		return in.Store(t.Context(), rq, bytes.NewReader(f.dataset))
	}

	require.Equal(t, StatusSuccess, store("CR_WARD3", "RADGATE"), "a sub-operation of radgate's own C-MOVE")
	require.Equal(t, StatusSuccess, store("MAINPACS", ""), "the PACS's C-STORE")
	recs, err := r.arch.Records(t.Context(), rec.StudyInstanceUID)
	require.NoError(t, err)
	require.Len(t, recs, 1, "stored")
	assert.Empty(t, r.orders.events(), "no order of what radgate asked for")

	require.Equal(t, StatusSuccess, store("CR_WARD3", "VIEWER_WS"), "a move someone else asked for")
	require.Len(t, r.orders.events(), 1, "is a push: one order")

	assert.Nil(t, in.Accept(t.Context(), &AssociateRequest{CallingAE: "MAINPACS", Remote: &net.TCPAddr{}}), "the PACS may call")
	assert.Equal(t, &RejectCallingAENotRecognized, in.Accept(t.Context(), &AssociateRequest{CallingAE: "OTHERPACS", Remote: &net.TCPAddr{}}))
}

// TestIntakeKeepsBothFormsByteIdentical: through the Storage SCP, an
// instance that fits one message and one above that limit (kept in the
// object store) read back through the StudySource as the Part 10 files
// the SCP wrote.
func TestIntakeKeepsBothFormsByteIdentical(t *testing.T) {
	small := readPart10(t, testenv.Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm"))
	large := readPart10(t, testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	r := newSCP(t, ward, ArchiveLimits{MaxAge: time.Hour}, func(in *Intake, _ *Server) {
		in.Archive.maxMessage = int64(len(small.dataset)) + 64<<10
	})
	for _, f := range []part10{small, large} {
		require.Equal(t, StatusSuccess, r.store(t, "CR_WARD3", f))
	}
	for f, want := range map[string]part10{"stream": small, "object": large} {
		var b bytes.Buffer // the file the SCP writes: the data set as sent behind its meta information
		require.NoError(t, WritePart10(&b, &StoreRequest{SOPClassUID: want.sopClass, SOPInstanceUID: want.sopInstance, TransferSyntaxUID: want.transferSyntax,
			Association: AssociationInfo{CallingAE: "CR_WARD3"}}, bytes.NewReader(want.dataset)))
		file := b.Bytes()
		rec, err := RecordOf(file)
		require.NoError(t, err)
		assert.Equal(t, f, form(t, r.arch, rec.StudyInstanceUID, rec.SOPInstanceUID))
		st, err := r.arch.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: rec.StudyInstanceUID})
		require.NoError(t, err)
		require.Equal(t, 1, st.InstanceCount())
		got, err := r.arch.RetrieveInstance(t.Context(), rec.StudyInstanceUID, rec.SeriesInstanceUID, rec.SOPInstanceUID)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(file, got), "the %s form reads back byte-identical", f)
	}
}
