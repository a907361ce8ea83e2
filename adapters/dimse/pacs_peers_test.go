package dimse

import (
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/internal/testenv"
)

// pacsRig is a PACS source over the DIMSE-only Orthanc with the given
// retrieval, an empty Archive, and (for C-MOVE) radgate's Storage SCP as
// serve builds it (Intake admitting the PACS's AE title) registered in
// Orthanc as aet.
type pacsRig struct {
	src    *PACS
	scp    *scpRig
	arch   *Archive
	logs   *lockedBuffer
	pacs   testenv.DIMSEOnlyPACS
	rec    InstanceRecord
	file   []byte
	sopCls string
}

func newPACSRig(t *testing.T, aet, retrieve string) *pacsRig {
	t.Helper()
	r := &pacsRig{pacs: testenv.DIMSEPACS(t), logs: &lockedBuffer{}}
	files, rec := uniqueStudy(t, "cr-chest-mono1-10bit-explicit-le.dcm", 1)
	r.file, r.rec = files[0], rec
	putInDIMSEPACS(t, r.pacs, r.file)
	r.scp = newSCP(t, ward, ArchiveLimits{MaxAge: time.Hour}, func(in *Intake, s *Server) {
		s.AETitle = aet
		in.PACSAETitles = []string{r.pacs.AETitle}
	})
	r.arch = r.scp.arch
	registerAE(t, r.pacs, "px-"+aet, aet, r.scp.addr)
	r.src = &PACS{
		Dialer: Dialer{CallingAE: aet, CalledAE: r.pacs.AETitle, Timeout: 20 * time.Second},
		Addr:   r.pacs.Addr, Retrieve: retrieve, MoveDestination: aet, Archive: r.arch,
		Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return r
}

// TestPACSFindsAndRetrievesOnce: FindStudy by accession number and by
// Study Instance UID builds the study from C-FIND at three levels; eight
// concurrent RetrieveInstance calls retrieve the study once (C-MOVE to
// radgate's SCP, or C-GET), all get the file, and no order comes of it.
func TestPACSFindsAndRetrievesOnce(t *testing.T) {
	for _, method := range []string{RetrieveMove, RetrieveGet} {
		t.Run(method, func(t *testing.T) {
			r := newPACSRig(t, "RG_"+strings.ToUpper(strings.ReplaceAll(method, "-", "")), method)
			ctx := t.Context()
			st, err := r.src.FindStudy(ctx, radgate.StudyQuery{AccessionNumber: r.rec.AccessionNumber})
			require.NoError(t, err)
			require.Equal(t, r.rec.StudyInstanceUID, st.StudyInstanceUID)
			require.Equal(t, r.rec.AccessionNumber, st.AccessionNumber)
			require.Len(t, st.Series, 1)
			sr := st.Series[0]
			assert.Equal(t, radgate.Series{SeriesInstanceUID: r.rec.SeriesInstanceUID, Modality: "CR", BodyPartExamined: "CHEST",
				Instances: []radgate.Instance{{SOPInstanceUID: r.rec.SOPInstanceUID, SOPClassUID: r.rec.SOPClassUID, ViewPosition: r.rec.ViewPosition}}}, sr)
			byUID, err := r.src.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: "urn:oid:" + r.rec.StudyInstanceUID})
			require.NoError(t, err)
			assert.Equal(t, st, byUID)

			_, err = r.src.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: "1.2.3.4.5.6.404"})
			require.ErrorIs(t, err, radgate.ErrStudyNotFound)
			assert.False(t, radgate.IsTransient(err))

			var wg sync.WaitGroup
			got := make([][]byte, 8)
			errs := make([]error, 8)
			for i := range got {
				wg.Go(func() {
					got[i], errs[i] = r.src.RetrieveInstance(ctx, st.StudyInstanceUID, sr.SeriesInstanceUID, r.rec.SOPInstanceUID)
				})
			}
			wg.Wait()
			for i := range got {
				require.NoError(t, errs[i])
				back, err := RecordOf(got[i])
				require.NoError(t, err)
				assert.Equal(t, r.rec.SOPInstanceUID, back.SOPInstanceUID)
			}
			assert.Equal(t, 1, strings.Count(r.logs.String(), "dimse: study retrieved"), "one retrieval for eight callers:\n%s", r.logs)
			assert.Contains(t, r.logs.String(), "method="+map[string]string{RetrieveMove: "C-MOVE", RetrieveGet: "C-GET"}[method])
			assert.Empty(t, r.scp.orders.events(), "what radgate retrieved makes no order")

			// Now in the Archive: read there, no second retrieval.
			_, err = r.src.RetrieveInstance(ctx, st.StudyInstanceUID, sr.SeriesInstanceUID, r.rec.SOPInstanceUID)
			require.NoError(t, err)
			assert.Equal(t, 1, strings.Count(r.logs.String(), "dimse: study retrieved"))
			assert.NotContains(t, r.logs.String()+r.scp.logs.String(), "Anonymized", "no patient name in the logs")

			// Behind the image store (as serve wires it), a retrieved study
			// is still described by the PACS, so later images there count and
			// the stability rule does not restart from the retrieval; with
			// the PACS unreachable, the image store's copy answers.
			recs, err := r.arch.Records(ctx, st.StudyInstanceUID)
			require.NoError(t, err)
			require.Len(t, recs, 1)
			assert.True(t, recs[0].Retrieved, "marked as retrieved, not pushed")
			layered, err := r.arch.WithPACS(r.src).FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: st.StudyInstanceUID})
			require.NoError(t, err)
			assert.Equal(t, st, layered, "the PACS's description")
			down := &PACS{Dialer: r.src.Dialer, Addr: "127.0.0.1:1", Archive: r.arch}
			local, err := r.arch.WithPACS(down).FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: st.StudyInstanceUID})
			require.NoError(t, err)
			assert.Equal(t, st.Series[0].Instances, local.Series[0].Instances)
			assert.False(t, local.LastArrival.IsZero(), "the image store's copy")
		})
	}
}

// TestPACSErrorsAreClassified: a PACS that is not listening is transient;
// an instance the study does not hold is not found after the retrieval.
func TestPACSErrorsAreClassified(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	src := &PACS{Dialer: Dialer{CallingAE: "RG", CalledAE: "NOBODY", Timeout: 2 * time.Second}, Addr: addr, Archive: newArchive(t, ArchiveLimits{})}
	_, err = src.FindStudy(t.Context(), radgate.StudyQuery{AccessionNumber: "A1"})
	require.Error(t, err)
	assert.True(t, radgate.IsTransient(err), "refused connection: %v", err)
	_, err = src.RetrieveInstance(t.Context(), "1.2.3", "1.2.3.4", "1.2.3.4.5")
	assert.True(t, radgate.IsTransient(err), "refused connection: %v", err)

	r := newPACSRig(t, "RG_MISSING", RetrieveMove)
	_, err = r.src.RetrieveInstance(t.Context(), r.rec.StudyInstanceUID, r.rec.SeriesInstanceUID, "1.2.3.4.5.6.7.404")
	require.ErrorIs(t, err, radgate.ErrStudyNotFound)
	assert.Contains(t, err.Error(), "C-MOVE")
	_, err = r.src.FindStudy(t.Context(), radgate.StudyQuery{AccessionNumber: "A*"})
	assert.ErrorContains(t, err, "wildcard")
}
