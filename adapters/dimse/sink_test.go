package dimse

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

const sinkDisclaimer = "AI decision support: confidence of an imaging finding of infectious pneumonia. It does not determine whether pneumonia is present, nor its severity or progression. Not a diagnosis."

var sinkEngine = radgate.EngineInfo{
	ID: "cxr-pneumonia-densenet121", Name: "Chest radiograph pneumonia finding, DenseNet-121 + CAM",
	Version: "1.0.0", Disclaimer: sinkDisclaimer,
	Finding: radgate.Coding{System: "http://snomed.info/sct", Code: "233604007", Display: "Pneumonia"},
}

// newJetStream starts an embedded NATS server for the test.
func newJetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	// In process, as radgate serve connects to its embedded server.
	nc, err := broker.Connect(srv.ClientURL(), "", nil, srv.InProcess())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// images is a radgate.StudySource of scored instances by SOP Instance UID.
type images map[string][]byte

func (im images) FindStudy(context.Context, radgate.StudyQuery) (*radgate.Study, error) {
	return nil, radgate.ErrStudyNotFound
}

func (im images) RetrieveInstance(_ context.Context, _, _, sop string) ([]byte, error) {
	if b, ok := im[sop]; ok {
		return b, nil
	}
	return nil, radgate.ErrStudyNotFound
}

// freshUID replaces uid in file with another of the same length (its last
// 16 digits random), so the copy is a new study, series or instance.
func freshUID(t *testing.T, file []byte, uid string) ([]byte, string) {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(9e15))
	require.NoError(t, err)
	digits := big.NewInt(0).Add(n, big.NewInt(1e15)).String()
	out := []byte(uid)
	for i, j := len(out)-1, len(digits)-1; i >= 0 && j >= 0; i-- {
		if out[i] != '.' {
			out[i] = digits[j]
			j--
		}
	}
	parts := strings.Split(string(out), ".")
	for i, c := range parts {
		if len(c) > 1 && c[0] == '0' {
			parts[i] = "1" + c[1:]
		}
	}
	repl := strings.Join(parts, ".")
	require.Positive(t, bytes.Count(file, []byte(uid)))
	return bytes.ReplaceAll(file, []byte(uid), []byte(repl)), repl
}

// scoredFixture is a copy of a test radiograph with fresh UIDs and the
// results of scoring it: one marked (with heatmap and CAM), one not.
type scoredFixture struct {
	src               []byte
	study, series, op string
	marked, unmarked  radgate.Result
}

func newScoredFixture(t *testing.T, name string) scoredFixture {
	t.Helper()
	orig, err := os.ReadFile(testenv.Testdata("cxr-dicom", name))
	require.NoError(t, err)
	meta, err := inference.ReadHeader(orig)
	require.NoError(t, err)
	var f scoredFixture
	f.src, f.study = freshUID(t, orig, meta.StudyInstanceUID)
	f.src, f.series = freshUID(t, f.src, meta.SeriesInstanceUID)
	f.src, f.op = freshUID(t, f.src, meta.SOPInstanceUID)
	// A fresh accession number too: other tests find the original's
	// study in the shared Orthanc by it, and expect one.
	require.GreaterOrEqual(t, len(meta.AccessionNumber), 4)
	an, err := rand.Int(rand.Reader, big.NewInt(1e9))
	require.NoError(t, err)
	acc := fmt.Sprintf("D%0*d", len(meta.AccessionNumber)-1, an.Int64())[:len(meta.AccessionNumber)]
	require.Positive(t, bytes.Count(f.src, []byte(meta.AccessionNumber)))
	f.src = bytes.ReplaceAll(f.src, []byte(meta.AccessionNumber), []byte(acc))

	img, err := inference.Decode(f.src)
	require.NoError(t, err)
	const n = 7
	cam := make([]float32, n*n)
	cam[5*n+1], cam[5*n+2], cam[4*n+1] = 1, 0.6, 0.5
	heat, _, _, err := inference.RenderHeatmap(img, inference.Result{Marked: true, CAM: cam, CAMWidth: n, CAMHeight: n,
		SourceWidth: img.Width, SourceHeight: img.Height, Crop: image.Rect(0, 0, img.Width, img.Height)}, inference.HeatmapOptions{})
	require.NoError(t, err)
	base := radgate.Result{Engine: sinkEngine, Outcome: radgate.OutcomeScored, Status: radgate.ResultFinal, Revision: 1,
		StudyInstanceUID: f.study, SeriesInstanceUID: f.series, SOPInstanceUID: f.op, ScoredAt: time.Now().UTC()}
	f.marked, f.unmarked = base, base
	f.marked.ID, f.marked.Probability, f.marked.Tier, f.marked.Marked = "dimse-marked-"+f.study, 0.873, "High", true
	f.marked.HeatmapPNG = heat
	f.marked.CAM = &radgate.CAM{Values: cam, Width: n, Height: n, X1: meta.Columns, Y1: meta.Rows, SourceWidth: meta.Columns, SourceHeight: meta.Rows}
	f.unmarked.ID, f.unmarked.Probability, f.unmarked.Tier = "dimse-unmarked-"+f.study, 0.214, "Low"
	return f
}

// amend returns r's next revision, amended, with another probability.
func amend(r radgate.Result, p float64) radgate.Result {
	r.Status, r.Revision, r.Probability = radgate.ResultAmended, r.EffectiveRevision()+1, p
	return r
}

// retract returns r withdrawn.
func retract(r radgate.Result, reason string) radgate.Result {
	r.Status, r.RetractReason = radgate.ResultRetracted, reason
	return r
}

// memSCP is our own Storage SCP keeping what it gets, with the contexts
// policy and handler status chosen by the test.
func memSCP(t *testing.T, policy ContextPolicy, status func(*StoreRequest) Status) (string, *memStore) {
	t.Helper()
	m := &memStore{}
	var h StoreHandler = m
	if status != nil {
		h = StoreHandlerFunc(func(ctx context.Context, rq *StoreRequest, data io.Reader) Status {
			if st := status(rq); st != StatusSuccess {
				_, _ = io.Copy(io.Discard, data)
				return st
			}
			return m.Store(ctx, rq, data)
		})
	}
	addr, _ := startServer(t, &Server{AETitle: "TESTPACS", Store: h, Contexts: policy})
	return addr, m
}

func testSink(t *testing.T, js jetstream.JetStream, addr string, im images, mutate func(*SinkOptions)) *Sink {
	t.Helper()
	o := SinkOptions{Name: "pacs-dimse", Addr: addr, Dialer: Dialer{CalledAE: "TESTPACS", CallingAE: "RADGATE", Timeout: 5 * time.Second},
		SC: true, SR: true, Images: im, JetStream: js, SentMaxAge: time.Hour}
	if mutate != nil {
		mutate(&o)
	}
	s, err := NewSink(o)
	require.NoError(t, err)
	return s
}

// part10Of writes what an SCP received as a Part 10 file.
func part10Of(t *testing.T, s stored) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, WritePart10(&b, &s.rq, bytes.NewReader(s.data)))
	return b.Bytes()
}

// dump runs dcmdump on a Part 10 file.
func dump(t *testing.T, file []byte) string {
	t.Helper()
	p := requireTool(t, "dcmdump")
	f := filepath.Join(t.TempDir(), "obj.dcm")
	require.NoError(t, os.WriteFile(f, file, 0o600))
	out, err := exec.Command(p, "+L", f).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

// rejected lists the SOP instances a rejection note's Current Requested
// Procedure Evidence Sequence references.
func rejected(t *testing.T, note []byte) []string {
	t.Helper()
	d := dump(t, note)
	i := strings.Index(d, "\n(0040,a375)")
	require.Positive(t, i, "the note has a Current Requested Procedure Evidence Sequence")
	ev := d[i+1:]
	if j := strings.Index(ev, "\n("); j >= 0 {
		ev = ev[:j] // up to the next top-level element
	}
	var out []string
	for _, l := range strings.Split(ev, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "(0008,1155) UI [") {
			uid, _, _ := strings.Cut(strings.TrimPrefix(l, "(0008,1155) UI ["), "]")
			out = append(out, strings.TrimRight(uid, "\x00 "))
		}
	}
	return out
}

// An SCP that accepts Implicit VR Little Endian only gets every object
// re-encoded, each one still valid; amendment and retraction store the
// rejection notes of what was stored, and a redelivery stores the same
// instances and note again.
func TestSinkImplicitOnlyPACS(t *testing.T) {
	f := newScoredFixture(t, "dx-chest-implicit-le-8bit.dcm")
	addr, scp := memSCP(t, ContextPolicy{TransferSyntaxes: []string{ImplicitVRLittleEndian}}, nil)
	js := newJetStream(t)
	pdf := []byte("%PDF-1.4\n% dimse sink test\n%%EOF\n")
	s := testSink(t, js, addr, images{f.op: f.src}, func(o *SinkOptions) {
		o.ParametricMap = true
		o.PDF = func(context.Context, radgate.Result) ([]byte, error) { return pdf, nil }
	})

	rec, err := s.Deliver(t.Context(), f.marked)
	require.NoError(t, err)
	u := derived.UIDsFor(f.marked.ID, 1)
	require.Equal(t, "studies/"+f.study+"/series/"+u.SRSeries+"/instances/"+u.SR, rec.Report)
	for sop, iod := range map[string]string{u.SC: "SCImage", u.SR: "Comprehensive3DSR", u.PM: "ParametricMap", u.PDF: "EncapsulatedPDF"} {
		got, ok := scp.get(sop)
		require.True(t, ok, "%s stored", iod)
		require.Equal(t, ImplicitVRLittleEndian, got.rq.TransferSyntaxUID)
		gotIOD, _ := testenv.Dciodvfy(t, iod+" as received in Implicit VR", part10Of(t, got))
		require.Equal(t, iod, gotIOD)
	}

	// Amended: revision 2's objects, then the note of revision 1's four.
	r2 := amend(f.marked, 0.91)
	_, err = s.Deliver(t.Context(), r2)
	require.NoError(t, err)
	u2 := derived.UIDsFor(f.marked.ID, 2)
	_, ok := scp.get(u2.SR)
	require.True(t, ok)
	note, ok := scp.get(u.KOS)
	require.True(t, ok, "the rejection note of revision 1")
	noteFile := part10Of(t, note)
	iod, _ := testenv.Dciodvfy(t, "rejection note in Implicit VR", noteFile)
	require.Equal(t, "KeyObjectSelectionDocument", iod)
	require.ElementsMatch(t, []string{u.PDF, u.PM, u.SC, u.SR}, rejected(t, noteFile))

	// Retracted: the note of revision 2's objects; delivered twice, the
	// same note.
	for range 2 {
		rec, err = s.Deliver(t.Context(), retract(r2, "ordered for the wrong patient"))
		require.NoError(t, err)
		require.Equal(t, "studies/"+f.study+"/series/"+u2.KOSSeries+"/instances/"+u2.KOS, rec.Report)
	}
	note2, ok := scp.get(u2.KOS)
	require.True(t, ok)
	require.ElementsMatch(t, []string{u2.PDF, u2.PM, u2.SC, u2.SR}, rejected(t, part10Of(t, note2)))
	require.Contains(t, dump(t, part10Of(t, note2)), "ordered for the wrong patient")
	require.Empty(t, scp.failures())
}

// ExplicitToImplicit keeps every element and value of the derived SR
// (nested sequences of defined and undefined length): the library reads
// the same data set from both encodings.
func TestExplicitToImplicit(t *testing.T) {
	f := newScoredFixture(t, "dx-chest-implicit-le-8bit.dcm")
	in := derived.FromResult(f.marked)
	sr, err := derived.StructuredReport(f.src, in)
	require.NoError(t, err)
	meta, ds, err := SplitPart10(sr)
	require.NoError(t, err)
	require.Equal(t, FileMeta{derived.SOPClassComprehensive3DSR, in.UIDs().SR, ExplicitVRLittleEndian}, meta)
	imp, err := ExplicitToImplicit(ds)
	require.NoError(t, err)
	var file bytes.Buffer
	require.NoError(t, WritePart10(&file, &StoreRequest{SOPClassUID: meta.SOPClassUID, SOPInstanceUID: meta.SOPInstanceUID, TransferSyntaxUID: ImplicitVRLittleEndian}, bytes.NewReader(imp)))
	flat := func(b []byte) []string {
		d, err := dicom.Parse(bytes.NewReader(b), int64(len(b)), nil)
		require.NoError(t, err)
		var out []string
		for it := d.FlatStatefulIterator(); it.HasNext(); {
			e := it.Next()
			if e.Tag.Group == 0x0002 {
				continue
			}
			if e.Value.ValueType() == dicom.Sequences {
				// its items' elements follow; only the length differs
				out = append(out, fmt.Sprintf("%v sequence of %d items", e.Tag, len(e.Value.GetValue().([]*dicom.SequenceItemValue))))
				continue
			}
			out = append(out, fmt.Sprintf("%v %v %v", e.Tag, e.RawValueRepresentation, e.Value))
		}
		return out
	}
	require.Equal(t, flat(sr), flat(file.Bytes()))

	// Undefined lengths: a sequence of one undefined-length item holding
	// one element, then a plain element.
	le := binary.LittleEndian
	var und []byte
	und = le.AppendUint16(le.AppendUint16(und, 0x0040), 0xA730)
	und = append(und, 'S', 'Q', 0, 0)
	und = le.AppendUint32(und, undefinedLength)
	und = le.AppendUint32(le.AppendUint16(le.AppendUint16(und, 0xFFFE), 0xE000), undefinedLength)
	und = append(le.AppendUint16(le.AppendUint16(und, 0x0040), 0xA010), 'C', 'S', 8, 0)
	und = append(und, "CONTAINS"...)
	und = le.AppendUint32(le.AppendUint16(le.AppendUint16(und, 0xFFFE), 0xE00D), 0)
	und = le.AppendUint32(le.AppendUint16(le.AppendUint16(und, 0xFFFE), 0xE0DD), 0)
	und = append(le.AppendUint16(le.AppendUint16(und, 0x0040), 0xA040), 'C', 'S', 4, 0)
	und = append(und, "TEXT"...)
	got, err := ExplicitToImplicit(und)
	require.NoError(t, err)
	var want []byte
	want = le.AppendUint32(le.AppendUint16(le.AppendUint16(want, 0x0040), 0xA730), 8+8+8)
	want = le.AppendUint32(le.AppendUint16(le.AppendUint16(want, 0xFFFE), 0xE000), 8+8)
	want = le.AppendUint32(le.AppendUint16(le.AppendUint16(want, 0x0040), 0xA010), 8)
	want = append(want, "CONTAINS"...)
	want = le.AppendUint32(le.AppendUint16(le.AppendUint16(want, 0x0040), 0xA040), 4)
	want = append(want, "TEXT"...)
	require.Equal(t, want, got)

	for name, bad := range map[string][]byte{
		"cut header":    und[:5],
		"cut value":     und[len(und)-3:],
		"no delimiter":  und[:len(und)-20],
		"implicit data": imp,
	} {
		_, err := ExplicitToImplicit(bad)
		require.Error(t, err, name)
	}
}

// Failures, and how the pipeline should take them: a PACS that is not
// there, or out of resources, is worth retrying; one that rejects radgate
// permanently, fails the data set, or accepts neither transfer syntax is
// not. Each error names the PACS's AE title.
func TestSinkErrors(t *testing.T) {
	f := newScoredFixture(t, "dx-chest-implicit-le-8bit.dcm")
	js := newJetStream(t)
	im := images{f.op: f.src}
	status := func(st Status) func(*StoreRequest) Status { return func(*StoreRequest) Status { return st } }
	for _, tc := range []struct {
		name      string
		addr      func(t *testing.T) string
		mutate    func(*SinkOptions)
		transient bool
		says      string
	}{
		{name: "nobody listening", addr: func(t *testing.T) string { return closedAddr(t) }, transient: true, says: "connecting to TESTPACS"},
		{name: "out of resources", addr: func(t *testing.T) string { a, _ := memSCP(t, ContextPolicy{}, status(0xA701)); return a },
			transient: true, says: "out of resources (0xA701)"},
		{name: "does not match", addr: func(t *testing.T) string { a, _ := memSCP(t, ContextPolicy{}, status(0xA900)); return a },
			says: "TESTPACS answered error: data set does not match SOP class (0xA900) to the C-STORE of the Secondary Capture"},
		{name: "cannot understand", addr: func(t *testing.T) string { a, _ := memSCP(t, ContextPolicy{}, status(0xC000)); return a },
			says: "cannot understand (0xC000)"},
		{name: "unknown called AE", addr: func(t *testing.T) string { a, _ := memSCP(t, ContextPolicy{}, nil); return a },
			mutate: func(o *SinkOptions) { o.Dialer.CalledAE = "OTHERPACS" },
			says:   "OTHERPACS at 127.0.0.1"},
		{name: "congested", addr: func(t *testing.T) string {
			a, _ := startServer(t, &Server{AETitle: "TESTPACS", Store: &memStore{},
				Accept: func(context.Context, *AssociateRequest) *Reject { return &RejectTemporaryCongestion }})
			return a
		}, transient: true, says: "rejected the association from RADGATE: dimse: association rejected: rejected-transient: temporary-congestion"},
		{name: "no answer in time", addr: func(t *testing.T) string {
			a, _ := memSCP(t, ContextPolicy{}, func(*StoreRequest) Status { time.Sleep(1500 * time.Millisecond); return StatusSuccess })
			return a
		}, mutate: func(o *SinkOptions) { o.Dialer.Timeout = 300 * time.Millisecond }, transient: true, says: "C-STORE of the"},
		{name: "neither transfer syntax", addr: func(t *testing.T) string {
			a, _ := memSCP(t, ContextPolicy{TransferSyntaxes: []string{JPEGLossless}}, nil)
			return a
		}, says: "TESTPACS accepts no transfer syntax radgate can send a Secondary Capture in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSink(t, js, tc.addr(t), im, tc.mutate)
			_, err := s.Deliver(t.Context(), f.marked)
			require.Error(t, err)
			require.Equal(t, tc.transient, radgate.IsTransient(err), "%v", err)
			require.ErrorContains(t, err, tc.says)
			require.ErrorContains(t, err, "storing result "+f.marked.ID)
		})
	}
	// Nothing was stored, so a retraction has nothing to reject: no
	// association at all (the address is closed).
	s := testSink(t, js, closedAddr(t), im, nil)
	rec, err := s.Deliver(t.Context(), retract(f.marked, ""))
	require.NoError(t, err)
	require.Equal(t, radgate.Receipt{}, rec)
	// A result that was not scored stores nothing either.
	rec, err = s.Deliver(t.Context(), radgate.Result{ID: "na", Outcome: radgate.OutcomeNotApplicable})
	require.NoError(t, err)
	require.Equal(t, radgate.Receipt{}, rec)
}

func closedAddr(t *testing.T) string {
	t.Helper()
	srv := &Server{AETitle: "TESTPACS", Addr: "127.0.0.1:0"}
	ln, err := srv.Listen()
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// The destination type: its keys are checked at their place in
// radgate.yaml, and the sink says which pictures it shows.
func TestDestinationTypeCheck(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		d    config.Destination
		want []radgate.KeyError
	}{
		{config.Destination{Type: "dimse", Host: "pacs", Port: 104, CalledAE: "PACS"}, nil},
		{config.Destination{Type: "dimse"}, []radgate.KeyError{
			{Message: "host must be set for a dimse destination (the PACS's DICOM host)"},
			{Message: "port must be set to the PACS's DICOM port, 1 to 65535 (got 0)"},
			{Message: "called_ae must be set for a dimse destination (the PACS's AE title)"},
		}},
		{config.Destination{Type: "dimse", Host: "pacs", Port: 70000, CalledAE: `PA\CS`, CallingAE: "A_TITLE_OF_17_CHR", SCWhenUnmarked: "maybe", SC: &no, SR: &no}, []radgate.KeyError{
			{Key: "port", Message: "port must be set to the PACS's DICOM port, 1 to 65535 (got 70000)"},
			{Key: "called_ae", Message: `AE title "PA\\CS" has a character outside the DICOM default repertoire or a backslash`},
			{Key: "calling_ae", Message: `"A_TITLE_OF_17_CHR" is not an AE title (1 to 16 characters)`},
			{Key: "sc_when_unmarked", Message: `derived: invalid input: sc_when_unmarked "maybe" is not "image", "text" or "none"`},
			{Message: "stores nothing: set sc, sr, parametric_map or pdf_report"},
		}},
		{config.Destination{Type: "dimse", Host: "pacs", Port: 104, CalledAE: "PACS", SC: &no, SR: &yes}, nil},
	} {
		require.Equal(t, tc.want, DestinationType().Check(tc.d), "%+v", tc.d)
	}
	require.Equal(t, time.Duration(0), sentMaxAge(config.Retention{Results: config.StoreLimits{MaxAge: config.Day}}))
	require.Equal(t, 90*24*time.Hour, sentMaxAge(config.DefaultRetention()))

	js := newJetStream(t)
	s := testSink(t, js, "127.0.0.1:1", images{}, nil)
	require.Equal(t, radgate.PictureHeatmap, s.Pictures())
	s = testSink(t, js, "127.0.0.1:1", images{}, func(o *SinkOptions) {
		o.SC, o.PDF = false, func(context.Context, radgate.Result) ([]byte, error) { return nil, nil }
	})
	require.Equal(t, radgate.PicturePreview|radgate.PictureThumbnail, s.Pictures())
	_, err := NewSink(SinkOptions{Name: "x", Addr: "h:1", SR: true, Images: images{}, JetStream: js, Dialer: Dialer{CalledAE: "PACS"}})
	require.ErrorContains(t, err, "calling AE")
}

// Probe: C-ECHO to our own SCP, and a clear error where nobody answers.
func TestEcho(t *testing.T) {
	addr, _ := memSCP(t, ContextPolicy{}, nil)
	require.NoError(t, Echo(t.Context(), Dialer{CalledAE: "TESTPACS", CallingAE: "RADGATE", Timeout: 5 * time.Second}, addr))
	err := Echo(t.Context(), Dialer{CalledAE: "TESTPACS", CallingAE: "RADGATE", Timeout: 5 * time.Second}, closedAddr(t))
	require.ErrorContains(t, err, "connecting to TESTPACS")
}

// orthanc is the shared Orthanc's REST API and DICOM port.
type orthanc struct {
	url, user, password string
	addr                string
}

func sharedOrthanc(t *testing.T) orthanc {
	t.Helper()
	pacs := testenv.Orthanc(t)
	port := os.Getenv("RADGATE_TEST_ORTHANC_DICOM_PORT")
	if port == "" {
		if testenv.Required() {
			t.Fatal("RADGATE_TEST_ORTHANC_DICOM_PORT unset: source testenv/run/env.sh")
		}
		t.Skip("RADGATE_TEST_ORTHANC_DICOM_PORT unset")
	}
	return orthanc{url: pacs.URL, user: pacs.Username, password: pacs.Password, addr: "127.0.0.1:" + port}
}

func (o orthanc) do(t *testing.T, method, path string, body []byte) []byte {
	t.Helper()
	rq, err := http.NewRequestWithContext(t.Context(), method, o.url+path, bytes.NewReader(body))
	require.NoError(t, err)
	rq.SetBasicAuth(o.user, o.password)
	rsp, err := http.DefaultClient.Do(rq)
	require.NoError(t, err)
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, rsp.StatusCode, "%s %s: %s", method, path, b)
	return b
}

// instances returns Orthanc's ids of the instances matching query (DICOM
// keyword → value).
func (o orthanc) instances(t *testing.T, query map[string]string) []string {
	t.Helper()
	body, err := json.Marshal(map[string]any{"Level": "Instance", "Query": query})
	require.NoError(t, err)
	var ids []string
	require.NoError(t, json.Unmarshal(o.do(t, http.MethodPost, "/tools/find", body), &ids))
	return ids
}

// file returns the one instance with this SOP Instance UID, as stored.
func (o orthanc) file(t *testing.T, sop string) []byte {
	t.Helper()
	ids := o.instances(t, map[string]string{"SOPInstanceUID": sop})
	require.Len(t, ids, 1, "instance %s in Orthanc", sop)
	return o.do(t, http.MethodGet, "/instances/"+ids[0]+"/file", nil)
}

// The proof against a real PACS: Orthanc's DICOM port gets the SC, SR,
// Parametric Map and Encapsulated PDF of a scored result, each found back
// over its REST API and valid by dciodvfy; an amendment stores revision 2
// and the rejection note of exactly revision 1's objects, a retraction the
// note of revision 2's; delivering each again adds no copy.
func TestOrthancDIMSESink(t *testing.T) {
	pacs := sharedOrthanc(t)
	f := newScoredFixture(t, "dx-chest-implicit-le-8bit.dcm")
	pacs.do(t, http.MethodPost, "/instances", f.src)
	js := newJetStream(t)
	pdf := []byte("%PDF-1.4\n% dimse sink test\n%%EOF\n")
	s := testSink(t, js, pacs.addr, images{f.op: f.src}, func(o *SinkOptions) {
		o.Dialer.CalledAE = os.Getenv("RADGATE_TEST_ORTHANC_AET")
		o.ParametricMap = true
		o.PDF = func(context.Context, radgate.Result) ([]byte, error) { return pdf, nil }
	})
	inStudy := func() int { return len(pacs.instances(t, map[string]string{"StudyInstanceUID": f.study})) }

	u1, u2 := derived.UIDsFor(f.marked.ID, 1), derived.UIDsFor(f.marked.ID, 2)
	rev1 := map[string]string{u1.SC: "SCImage", u1.SR: "Comprehensive3DSR", u1.PM: "ParametricMap", u1.PDF: "EncapsulatedPDF"}
	r2 := amend(f.marked, 0.91)
	gone := retract(r2, "ordered for the wrong patient")
	for i, step := range []struct {
		r     radgate.Result
		found map[string]string
		note  []string // the rejection note's objects, when one is stored
		kos   string
		total int
	}{
		{r: f.marked, found: rev1, total: 1 + 4},
		{r: r2, found: map[string]string{u2.SC: "SCImage", u2.SR: "Comprehensive3DSR", u2.PM: "ParametricMap", u2.PDF: "EncapsulatedPDF"},
			note: []string{u1.PDF, u1.PM, u1.SC, u1.SR}, kos: u1.KOS, total: 1 + 4 + 4 + 1},
		{r: gone, note: []string{u2.PDF, u2.PM, u2.SC, u2.SR}, kos: u2.KOS, total: 1 + 4 + 4 + 2},
	} {
		for range 2 { // the second delivery is a redelivery: no new copy
			_, err := s.Deliver(t.Context(), step.r)
			require.NoError(t, err, "step %d", i)
		}
		for sop, want := range step.found {
			file := pacs.file(t, sop)
			iod, _ := testenv.Dciodvfy(t, want+" read back from Orthanc", file)
			require.Equal(t, want, iod)
			meta, _, err := SplitPart10(file)
			require.NoError(t, err)
			require.Equal(t, ExplicitVRLittleEndian, meta.TransferSyntaxUID, "sent as derived wrote it: Orthanc accepts Explicit VR")
		}
		if step.kos != "" {
			note := pacs.file(t, step.kos)
			iod, _ := testenv.Dciodvfy(t, "rejection note read back from Orthanc", note)
			require.Equal(t, "KeyObjectSelectionDocument", iod)
			require.ElementsMatch(t, step.note, rejected(t, note), "step %d: the note references exactly the revision's objects", i)
		}
		require.Equal(t, step.total, inStudy(), "step %d: instances in the study", i)
	}
	sr := pacs.file(t, u2.SR)
	require.Contains(t, dump(t, sr), u1.SR, "revision 2's SR names revision 1's as its predecessor")
}
