package dicomweb

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

// These tests talk to the real Orthanc (with the DICOMweb plugin) that
// testenv/start.sh runs; they skip without it, and fail under
// RADGATE_REQUIRE_PEERS=1.

// sample is one test file and what its header says.
type sample struct {
	name                          string
	data                          []byte
	study, series, sop, sopClass  string
	accession, modality, bodyPart string
	transferSyntax, institution   string
	viewPosition                  string
}

func loadSamples(t testing.TB) []sample {
	t.Helper()
	files, err := filepath.Glob(testenv.Testdata("cxr-dicom", "*.dcm"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []sample
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		ds, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, dicom.SkipPixelData())
		require.NoError(t, err, f)
		get := func(tg tag.Tag) string {
			e, err := ds.FindElementByTag(tg)
			if err != nil {
				return ""
			}
			v := dicom.MustGetStrings(e.Value)
			if len(v) == 0 {
				return ""
			}
			return strings.Trim(v[0], " \x00")
		}
		out = append(out, sample{
			name: filepath.Base(f), data: data,
			study: get(tag.StudyInstanceUID), series: get(tag.SeriesInstanceUID),
			sop: get(tag.SOPInstanceUID), sopClass: get(tag.SOPClassUID),
			accession: get(tag.AccessionNumber), modality: get(tag.Modality),
			bodyPart: get(tag.BodyPartExamined), transferSyntax: get(tag.TransferSyntaxUID),
			institution: get(tag.InstitutionName), viewPosition: get(tag.ViewPosition),
		})
	}
	return out
}

func orthancClient(t *testing.T, password string) *Client {
	t.Helper()
	pacs := testenv.Orthanc(t)
	c, err := New(Options{
		BaseURL:  pacs.DICOMweb,
		Username: pacs.Username,
		Password: password,
		Timeout:  30 * time.Second,
	})
	require.NoError(t, err)
	return c
}

// randomUID returns a UID under the 2.25 (UUID-derived) root.
func randomUID(t *testing.T) string {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	require.NoError(t, err)
	return "2.25." + n.String()
}

func TestOrthancStoreFindRetrieve(t *testing.T) {
	pacs := testenv.Orthanc(t)
	c := orthancClient(t, pacs.Password)
	samples := loadSamples(t)

	files := make([][]byte, len(samples))
	for i, s := range samples {
		files[i] = s.data
	}
	res, err := c.Store(t.Context(), files...)
	require.NoError(t, err)
	require.Empty(t, res.Failed)
	stored := map[string]string{}
	for _, s := range res.Stored {
		stored[s.SOPInstanceUID] = s.SOPClassUID
	}
	for _, s := range samples {
		require.Equal(t, s.sopClass, stored[s.sop], "%s: STOW-RS lists it as stored", s.name)
	}

	// Storing the same files again: Orthanc keeps the first copy and answers
	// success ("AlreadyStored").
	again, err := c.Store(t.Context(), files[0])
	require.NoError(t, err)
	require.Len(t, again.Stored, 1)
	require.Equal(t, samples[0].sop, again.Stored[0].SOPInstanceUID)

	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			byUID, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: "urn:oid:" + s.study})
			require.NoError(t, err)
			require.Equal(t, &radgate.Study{
				StudyInstanceUID: s.study,
				AccessionNumber:  s.accession,
				InstitutionName:  s.institution,
				Series: []radgate.Series{{
					SeriesInstanceUID: s.series,
					Modality:          s.modality,
					BodyPartExamined:  s.bodyPart, // "" where the file has none
					Instances:         []radgate.Instance{{SOPInstanceUID: s.sop, SOPClassUID: s.sopClass, ViewPosition: s.viewPosition}},
				}},
			}, byUID)
			require.NotEmpty(t, byUID.Series[0].Modality)

			byAccession, err := c.FindStudy(t.Context(), radgate.StudyQuery{AccessionNumber: s.accession})
			require.NoError(t, err)
			require.Equal(t, byUID, byAccession)

			got, err := c.RetrieveInstance(t.Context(), s.study, s.series, s.sop)
			require.NoError(t, err)
			// Retrieved as stored: byte for byte the file that was sent
			// (Orthanc 1.10 keeps the meta header as it came).
			require.True(t, bytes.Equal(s.data, got), "%s: retrieved %d bytes, sent %d; they differ", s.name, len(got), len(s.data))
			ds, err := dicom.Parse(bytes.NewReader(got), int64(len(got)), nil, dicom.SkipPixelData())
			require.NoError(t, err)
			e, err := ds.FindElementByTag(tag.TransferSyntaxUID)
			require.NoError(t, err)
			require.Equal(t, s.transferSyntax, strings.Trim(dicom.MustGetStrings(e.Value)[0], " \x00"))
			e, err = ds.FindElementByTag(tag.SOPInstanceUID)
			require.NoError(t, err)
			require.Equal(t, s.sop, strings.Trim(dicom.MustGetStrings(e.Value)[0], " \x00"))
		})
	}
}

// Orthanc matches accession numbers with wildcards and without regard to
// case; FindStudy must only accept the exact value.
func TestOrthancAccessionMatchIsExact(t *testing.T) {
	pacs := testenv.Orthanc(t)
	c := orthancClient(t, pacs.Password)
	samples := loadSamples(t)
	s := samples[0]
	_, err := c.Store(t.Context(), s.data)
	require.NoError(t, err)

	for _, acc := range []string{
		s.accession[:len(s.accession)-1] + "*",
		strings.ToLower(s.accession),
		s.accession[:len(s.accession)-1] + "?",
	} {
		_, err := c.FindStudy(t.Context(), radgate.StudyQuery{AccessionNumber: acc})
		require.ErrorIs(t, err, radgate.ErrStudyNotFound, "accession %q", acc)
		require.False(t, radgate.IsTransient(err))
		require.Contains(t, err.Error(), acc, "the error names the query")
	}
}

func TestOrthancUnknownStudy(t *testing.T) {
	pacs := testenv.Orthanc(t)
	c := orthancClient(t, pacs.Password)

	uid := randomUID(t)
	_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: uid})
	require.ErrorIs(t, err, radgate.ErrStudyNotFound)
	require.False(t, radgate.IsTransient(err))
	require.Contains(t, err.Error(), uid)

	_, err = c.FindStudy(t.Context(), radgate.StudyQuery{AccessionNumber: "RGS-ABSENT-" + uid[len(uid)-8:]})
	require.ErrorIs(t, err, radgate.ErrStudyNotFound)

	_, err = c.RetrieveInstance(t.Context(), uid, randomUID(t), randomUID(t))
	require.ErrorIs(t, err, ErrInstanceNotFound)
	require.ErrorIs(t, err, radgate.ErrStudyNotFound)
	require.False(t, radgate.IsTransient(err))
	require.Contains(t, err.Error(), "/studies/"+uid+"/series/")
}

func TestOrthancWrongPassword(t *testing.T) {
	pacs := testenv.Orthanc(t)
	const wrong = "not-the-password-7f3a"
	c := orthancClient(t, wrong)
	samples := loadSamples(t)
	s := samples[0]

	_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: s.study})
	requirePermanentAuth(t, err, wrong)
	_, err = c.RetrieveInstance(t.Context(), s.study, s.series, s.sop)
	requirePermanentAuth(t, err, wrong)
	_, err = c.Store(t.Context(), s.data)
	requirePermanentAuth(t, err, wrong)

	// No credentials at all.
	anon, err := New(Options{BaseURL: pacs.DICOMweb})
	require.NoError(t, err)
	_, err = anon.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: s.study})
	requirePermanentAuth(t, err, wrong)
}

func requirePermanentAuth(t *testing.T, err error, password string) {
	t.Helper()
	require.ErrorIs(t, err, ErrUnauthorized)
	require.False(t, radgate.IsTransient(err), "a refused password is not worth retrying")
	require.Contains(t, err.Error(), "401")
	require.NotContains(t, err.Error(), password)
}

// Orthanc answers 400 to a STOW-RS with a part it cannot parse, lists the
// good parts as stored, and leaves the bad one out.
func TestOrthancStorePartialFailure(t *testing.T) {
	pacs := testenv.Orthanc(t)
	c := orthancClient(t, pacs.Password)
	s := loadSamples(t)[0]

	res, err := c.Store(t.Context(), s.data, []byte("not a DICOM file"))
	require.ErrorIs(t, err, ErrStoreIncomplete)
	require.False(t, radgate.IsTransient(err))
	require.Len(t, res.Stored, 1)
	require.Equal(t, s.sop, res.Stored[0].SOPInstanceUID)
}

// dcmodify runs DCMTK's dcmodify on a copy of data with args and returns
// the modified file.
func dcmodify(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	p, err := exec.LookPath("dcmodify")
	if err != nil {
		msg := "dcmodify (DCMTK) not on PATH: install it with testenv/setup.sh"
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	f := filepath.Join(t.TempDir(), "obj.dcm")
	require.NoError(t, os.WriteFile(f, data, 0o600))
	out, err := exec.Command(p, append(append([]string{"-nb"}, args...), f)...).CombinedOutput()
	require.NoError(t, err, "dcmodify: %s", out)
	b, err := os.ReadFile(f)
	require.NoError(t, err)
	return b
}

// FindStudy reads each instance's view from Orthanc: View Position for a
// PA and a lateral (LL) of one series, and View Code Sequence for an
// instance without View Position in a second series (Orthanc's QIDO-RS
// leaves the sequence out; the series metadata has it).
func TestOrthancFindStudyViews(t *testing.T) {
	pacs := testenv.Orthanc(t)
	c := orthancClient(t, pacs.Password)
	orig, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm"))
	require.NoError(t, err)
	meta, err := inference.ReadHeader(orig)
	require.NoError(t, err)
	require.Equal(t, "PA", meta.ViewPosition)
	pa, study := reUID(t, orig, meta.StudyInstanceUID)
	pa, series := reUID(t, pa, meta.SeriesInstanceUID)
	pa, paSOP := reUID(t, pa, meta.SOPInstanceUID)
	pa, _ = newAccession(t, pa, meta.AccessionNumber)

	llSOP, codedSOP, codedSeries := randomUID(t), randomUID(t), randomUID(t)
	ll := dcmodify(t, pa, "-m", "(0018,5101)=LL", "-m", "(0008,0018)="+llSOP, "-m", "(0020,0013)=2")
	coded := dcmodify(t, pa, "-e", "(0018,5101)", "-m", "(0008,0018)="+codedSOP, "-m", "(0020,000e)="+codedSeries,
		"-m", "(0020,0011)=2",
		"-i", "(0054,0220)[0].(0008,0100)=399348003", "-i", "(0054,0220)[0].(0008,0102)=SCT",
		"-i", "(0054,0220)[0].(0008,0104)=postero-anterior")
	_, err = c.Store(t.Context(), pa, ll, coded)
	require.NoError(t, err)

	st, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: study})
	require.NoError(t, err)
	require.Len(t, st.Series, 2)
	require.Equal(t, series, st.Series[0].SeriesInstanceUID)
	require.Equal(t, []radgate.Instance{
		{SOPInstanceUID: paSOP, SOPClassUID: meta.SOPClassUID, ViewPosition: "PA"},
		{SOPInstanceUID: llSOP, SOPClassUID: meta.SOPClassUID, ViewPosition: "LL"},
	}, st.Series[0].Instances)
	require.Equal(t, codedSeries, st.Series[1].SeriesInstanceUID)
	require.Equal(t, []radgate.Instance{{SOPInstanceUID: codedSOP, SOPClassUID: meta.SOPClassUID,
		ViewCode: &radgate.Coding{System: "http://snomed.info/sct", Code: "399348003", Display: "postero-anterior"}}},
		st.Series[1].Instances)
	require.Equal(t, 3, st.InstanceCount())
}
