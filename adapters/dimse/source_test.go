package dimse

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/internal/demo"
)

func newArchive(t testing.TB, l ArchiveLimits) *Archive {
	t.Helper()
	a, err := EnsureArchive(t.Context(), newJetStream(t), l)
	require.NoError(t, err)
	return a
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cxr-dicom", name))
	require.NoError(t, err)
	return b
}

func TestArchiveFindsWhatWasPut(t *testing.T) {
	a := newArchive(t, ArchiveLimits{MaxAge: time.Hour})
	ctx := t.Context()
	files := map[string][]byte{}
	var study, acsn string
	for i, name := range []string{"cr-chest-pa-jpeg-baseline.dcm", "dx-chest-implicit-le-8bit.dcm"} {
		b := sample(t, name)
		rec, err := RecordOf(b)
		require.NoError(t, err)
		if i == 0 {
			study, acsn = rec.StudyInstanceUID, rec.AccessionNumber
		} else { // the second image joins the first one's study, in a series of its own
			rec.StudyInstanceUID, rec.AccessionNumber = study, acsn
		}
		rec.ReceivedAt = time.Date(2026, 12, 3, 9, 0, i, 0, time.UTC)
		require.NoError(t, a.Put(ctx, rec, b))
		files[rec.SOPInstanceUID] = b
	}
	require.NotEmpty(t, acsn, "the sample has an accession number")

	st, err := a.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: study})
	require.NoError(t, err)
	assert.Equal(t, 2, st.InstanceCount())
	assert.Len(t, st.Series, 2)
	assert.Equal(t, acsn, st.AccessionNumber)
	assert.Equal(t, time.Date(2026, 12, 3, 9, 0, 1, 0, time.UTC), st.LastArrival.UTC(), "the last arrival is the latest record's")
	for _, se := range st.Series {
		for _, in := range se.Instances {
			got, err := a.RetrieveInstance(ctx, study, se.SeriesInstanceUID, in.SOPInstanceUID)
			require.NoError(t, err)
			assert.Equal(t, files[in.SOPInstanceUID], got, "the file comes back as pushed")
		}
	}

	byAcsn, err := a.FindStudy(ctx, radgate.StudyQuery{AccessionNumber: acsn})
	require.NoError(t, err)
	assert.Equal(t, study, byAcsn.StudyInstanceUID)

	_, err = a.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: "1.2.3.4"})
	assert.ErrorIs(t, err, radgate.ErrStudyNotFound)
	_, err = a.FindStudy(ctx, radgate.StudyQuery{AccessionNumber: "NOPE"})
	assert.ErrorIs(t, err, radgate.ErrStudyNotFound)
	_, err = a.RetrieveInstance(ctx, study, "", "1.2.3.4")
	assert.ErrorIs(t, err, radgate.ErrStudyNotFound)
}

func TestArchiveRoomFollowsMaxBytes(t *testing.T) {
	b := sample(t, "cr-chest-pa-jpeg-baseline.dcm")
	a := newArchive(t, ArchiveLimits{MaxAge: time.Hour, MaxBytes: int64(len(b))*3 + 4096})
	ctx := t.Context()
	require.NoError(t, a.Room(ctx, int64(len(b))))
	for n := 1; n <= 2; n++ {
		c, _, err := demo.Clone(b, n)
		require.NoError(t, err)
		rec, err := RecordOf(c)
		require.NoError(t, err)
		require.NoError(t, a.Put(ctx, rec, c))
	}
	err := a.Room(ctx, int64(len(b))*2)
	require.ErrorIs(t, err, ErrStorageLow)
	assert.Contains(t, err.Error(), "dimse.min_free_bytes")
}

// pacs is a StudySource that holds one study.
type pacs struct{ study string }

func (p pacs) FindStudy(_ context.Context, q radgate.StudyQuery) (*radgate.Study, error) {
	if q.StudyInstanceUID == p.study {
		return &radgate.Study{StudyInstanceUID: p.study}, nil
	}
	return nil, radgate.ErrStudyNotFound
}

func (p pacs) RetrieveInstance(context.Context, string, string, string) ([]byte, error) {
	return []byte("from the PACS"), nil
}

func TestWithPACSLooksInTheArchiveFirst(t *testing.T) {
	a := newArchive(t, ArchiveLimits{MaxAge: time.Hour})
	b := sample(t, "cr-chest-pa-jpeg-baseline.dcm")
	rec, err := RecordOf(b)
	require.NoError(t, err)
	require.NoError(t, a.Put(t.Context(), rec, b))
	src := a.WithPACS(pacs{study: "1.2.840.99"})

	st, err := src.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: rec.StudyInstanceUID})
	require.NoError(t, err)
	assert.False(t, st.LastArrival.IsZero(), "a pushed study comes from the archive")
	st, err = src.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: "1.2.840.99"})
	require.NoError(t, err)
	assert.True(t, st.LastArrival.IsZero(), "any other from the PACS")
	_, err = src.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: "1.2.840.98"})
	assert.True(t, errors.Is(err, radgate.ErrStudyNotFound))

	got, err := src.RetrieveInstance(t.Context(), rec.StudyInstanceUID, rec.SeriesInstanceUID, rec.SOPInstanceUID)
	require.NoError(t, err)
	assert.Equal(t, b, got)
	got, err = src.RetrieveInstance(t.Context(), "1.2.840.99", "1", "2")
	require.NoError(t, err)
	assert.Equal(t, "from the PACS", string(got))
}

// form says where the archive keeps an instance: "stream" (one message),
// "object" (object store and index entry), or "" (neither).
func form(t *testing.T, a *Archive, study, sop string) string {
	t.Helper()
	_, serr := a.stream.GetLastMsgForSubject(t.Context(), subjectOf(study, sop))
	_, oerr := a.obj.GetInfo(t.Context(), objectName(study, sop))
	switch {
	case serr == nil && oerr == nil:
		return "both"
	case serr == nil:
		return "stream"
	case oerr == nil:
		return "object"
	}
	require.ErrorIs(t, serr, jetstream.ErrMsgNotFound)
	require.ErrorIs(t, oerr, jetstream.ErrObjectNotFound)
	return ""
}

func TestArchiveKeepsSmallInstancesAsMessagesAndLargeOnesAsObjects(t *testing.T) {
	a := newArchive(t, ArchiveLimits{MaxAge: time.Hour})
	ctx := t.Context()
	small, large := sample(t, "cr-chest-pa-jpeg-baseline.dcm"), sample(t, "dx-chest-implicit-le-8bit.dcm")
	a.maxMessage = int64(len(small) + 4096) // the large one is above the single-message limit
	rs, err := RecordOf(small)
	require.NoError(t, err)
	rl, err := RecordOf(large)
	require.NoError(t, err)
	rl.StudyInstanceUID, rl.AccessionNumber = rs.StudyInstanceUID, rs.AccessionNumber // one study
	rs.InstitutionName = "北総合病院 ｶﾀｶﾅ"                                                 // the header keeps UTF-8
	require.NoError(t, a.Put(ctx, rs, small))
	require.NoError(t, a.Put(ctx, rl, large))
	assert.Equal(t, "stream", form(t, a, rs.StudyInstanceUID, rs.SOPInstanceUID))
	assert.Equal(t, "object", form(t, a, rl.StudyInstanceUID, rl.SOPInstanceUID))

	check := func() {
		t.Helper()
		recs, err := a.Records(ctx, rs.StudyInstanceUID)
		require.NoError(t, err)
		require.Len(t, recs, 2, "both forms are listed, once each")
		for _, r := range recs {
			if r.SOPInstanceUID == rs.SOPInstanceUID {
				assert.Equal(t, "北総合病院 ｶﾀｶﾅ", r.InstitutionName)
				assert.Equal(t, int64(len(small)), r.Bytes)
			}
		}
		st, err := a.FindStudy(ctx, radgate.StudyQuery{AccessionNumber: rs.AccessionNumber})
		require.NoError(t, err)
		assert.Equal(t, 2, st.InstanceCount())
		for sop, want := range map[string][]byte{rs.SOPInstanceUID: small, rl.SOPInstanceUID: large} {
			got, err := a.RetrieveInstance(ctx, rs.StudyInstanceUID, "", sop)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(want, got), "instance %s reads back byte-identical", sop)
		}
	}
	check()

	// Sent again above the limit: the object replaces the message.
	a.maxMessage = 1024
	require.NoError(t, a.Put(ctx, rs, small))
	assert.Equal(t, "object", form(t, a, rs.StudyInstanceUID, rs.SOPInstanceUID))
	check()
	// And again below it: the message is found first.
	a.maxMessage = 0 // the connection's max_payload: the embedded server's takes both
	require.NoError(t, a.Put(ctx, rs, small))
	require.NoError(t, a.Put(ctx, rl, large))
	check()
	assert.Equal(t, "both", form(t, a, rl.StudyInstanceUID, rl.SOPInstanceUID))

	// A study whose UID continues this one's is not part of it.
	other := rs
	other.StudyInstanceUID, other.SOPInstanceUID = rs.StudyInstanceUID+".1", rs.SOPInstanceUID+".1"
	require.NoError(t, a.Put(ctx, other, small))
	recs, err := a.Records(ctx, rs.StudyInstanceUID)
	require.NoError(t, err)
	assert.Len(t, recs, 2)
}
