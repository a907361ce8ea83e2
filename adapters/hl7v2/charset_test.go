package hl7v2

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dimse"
	"github.com/radgate/radgate/dicomcs"
	"github.com/radgate/radgate/inference"
)

// jpImages are testdata/jp-charset (README there): Patient's Name as the
// README gives it, Patient ID as the file holds it.
var jpImages = []struct{ file, name, id string }{
	{"jp-ir87-kanji.dcm", "Tanaka^Ichiro=田中^一郎=たなか^いちろう", "JP-0001"},
	{"jp-ir13-ir87-katakana.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", "JP-0002"},
	{"jp-utf8.dcm", "Sato^Hanako=佐藤^花子=さとう^はなこ", "JP-0003"},
}

// imageStore is a radgate.StudySource holding Part 10 files, one series
// per study (radgate's image store of pushed studies, in miniature).
type imageStore struct {
	files map[string][]byte // by SOP Instance UID
	metas map[string]*inference.Meta
	// byFile: the header of each file
	byFile map[string]*inference.Meta
	reads  int
}

func newImageStore(t *testing.T, files ...string) *imageStore {
	t.Helper()
	s := &imageStore{files: map[string][]byte{}, metas: map[string]*inference.Meta{}, byFile: map[string]*inference.Meta{}}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "jp-charset", f))
		require.NoError(t, err)
		m, err := inference.ReadHeader(b)
		require.NoError(t, err)
		s.files[m.SOPInstanceUID], s.metas[m.SOPInstanceUID], s.byFile[f] = b, m, m
	}
	return s
}

func (s *imageStore) FindStudy(_ context.Context, q radgate.StudyQuery) (*radgate.Study, error) {
	for sop, m := range s.metas {
		if m.StudyInstanceUID == q.StudyInstanceUID || (q.StudyInstanceUID == "" && m.AccessionNumber == q.AccessionNumber) {
			return &radgate.Study{StudyInstanceUID: m.StudyInstanceUID, Series: []radgate.Series{{SeriesInstanceUID: m.SeriesInstanceUID,
				Instances: []radgate.Instance{{SOPInstanceUID: sop}}}}}, nil
		}
	}
	return nil, radgate.ErrStudyNotFound
}

func (s *imageStore) RetrieveInstance(_ context.Context, study, _, sop string) ([]byte, error) {
	s.reads++
	if m, ok := s.metas[sop]; ok && m.StudyInstanceUID == study {
		return s.files[sop], nil
	}
	return nil, radgate.ErrStudyNotFound
}

// meta returns the header of the store's image of file.
func (s *imageStore) meta(t *testing.T, file string) *inference.Meta {
	t.Helper()
	m, ok := s.byFile[file]
	require.True(t, ok, "no image of %s", file)
	return m
}

// pushedResult is a result of a study pushed to radgate (no ORM, no FHIR
// Patient: the order knows only the study).
func pushedResult(m *inference.Meta, scoredInstance bool) radgate.Result {
	r := sampleResult()
	r.Order = radgate.OrderStatus{ID: "order-" + m.AccessionNumber, StudyInstanceUID: m.StudyInstanceUID,
		Accession: &radgate.Identifier{Value: m.AccessionNumber}, Sources: []string{radgate.SourceDIMSE + ":assoc-1"}}
	r.StudyInstanceUID = m.StudyInstanceUID
	if scoredInstance {
		r.SeriesInstanceUID, r.SOPInstanceUID = m.SeriesInstanceUID, m.SOPInstanceUID
	}
	return r
}

// A pushed study's ORU takes PID-3 and PID-5 from the scored image, its
// name decoded by the image's character set: one PID-5 repetition per
// group, ideographic first, each with its XPN-8 code.
func TestPatientsFromImage(t *testing.T) {
	store := newImageStore(t, "jp-ir87-kanji.dcm", "jp-ir13-ir87-katakana.dcm", "jp-utf8.dcm")
	p := &Patients{Images: store}
	for _, im := range jpImages {
		for _, scored := range []bool{true, false} { // the scored instance, or the study's first
			m := store.meta(t, im.file)
			d, err := p.Demographics(t.Context(), pushedResult(m, scored))
			require.NoError(t, err, im.file)
			require.NotNil(t, d.Identifier, im.file)
			require.Equal(t, im.id, d.Identifier.Value)
			pn := dicomcs.SplitPN(im.name)
			want := Name{Family: pn.Ideographic.Family, Given: pn.Ideographic.Given, Representation: "I", Others: []Name{
				{Family: pn.Phonetic.Family, Given: pn.Phonetic.Given, Representation: "P"},
				{Family: pn.Alphabetic.Family, Given: pn.Alphabetic.Given, Representation: "A"},
			}}
			require.Equal(t, want, d.Name, im.file)
			require.Equal(t, pn.Ideographic.Family+"^"+pn.Ideographic.Given+"^^^^^^I~"+
				pn.Phonetic.Family+"^"+pn.Phonetic.Given+"^^^^^^P~"+pn.Alphabetic.Family+"^"+pn.Alphabetic.Given+"^^^^^^A",
				d.Name.xpn(DefaultDelimiters))
			require.Equal(t, "[patient name]", d.Name.String(), "never logged")
		}
	}
	// An order from the EHR with a FHIR Patient is not read from images.
	r := pushedResult(store.meta(t, "jp-utf8.dcm"), true)
	r.Order.Patient = &radgate.Reference{Reference: "Patient/1", Identifier: &radgate.Identifier{Value: "X"}}
	before := store.reads
	_, _ = p.Demographics(t.Context(), r)
	require.Equal(t, before, store.reads)
	// A study the store does not have: no name, no error.
	r = pushedResult(store.meta(t, "jp-utf8.dcm"), false)
	r.Order.StudyInstanceUID, r.StudyInstanceUID = "1.2.3", "1.2.3"
	d, err := p.Demographics(t.Context(), r)
	require.NoError(t, err)
	require.True(t, d.Name.IsZero())
}

// oruWithName is the ORU of a pushed study with the name of a sample, in
// charset cs.
func oruWithName(t *testing.T, name, cs string) *Message {
	t.Helper()
	o := oruOpts
	o.Charset = cs
	o.PatientName = nameOfDICOM(dicomcs.SplitPN(name))
	m, err := ORU(sampleResult(), o)
	require.NoError(t, err)
	return m
}

func segment(raw []byte, name string) []byte {
	for _, s := range bytes.Split(raw, []byte("\r")) {
		if bytes.HasPrefix(s, []byte(name+"|")) {
			return s
		}
	}
	return nil
}

// ISO IR87: MSH-18 "~ISO IR87", every kanji and kana of PID-5 in JIS X 0208
// between ESC $ B and ESC ( B, the delimiters in ASCII, no byte above
// 0x7F; read back as ISO 2022 IR 87 the names are the samples'.
func TestORUCharsetIR87(t *testing.T) {
	for _, im := range jpImages {
		m := oruWithName(t, im.name, CharsetIR87)
		require.Equal(t, "~ISO IR87", m.msh().GetRaw("18"))
		wire, n := m.Wire()
		require.Zero(t, n, "substituted characters")
		for _, b := range wire {
			require.Less(t, b, byte(0x80), "a byte above 0x7F in an ISO IR87 message")
		}
		pid := segment(wire, "PID")
		require.NotNil(t, pid)
		cs, err := dicomcs.Parse(`\ISO 2022 IR 87`)
		require.NoError(t, err)
		back := cs.DecodeString(pid, "LT")
		pn := dicomcs.SplitPN(im.name)
		// Half-width katakana travel full-width in JIS X 0208.
		alpha := pn.Alphabetic.Family + "^" + pn.Alphabetic.Given
		if im.file == "jp-ir13-ir87-katakana.dcm" {
			alpha = "ヤマダ^タロウ"
		}
		want := "|" + pn.Ideographic.Family + "^" + pn.Ideographic.Given + "^^^^^^I~" + pn.Phonetic.Family + "^" + pn.Phonetic.Given + "^^^^^^P~" + alpha + "^^^^^^A"
		require.Contains(t, back, want, im.file)
	}
	// The kanji bytes themselves: 田中 is 0x45 0x44 0x43 0x66.
	wire, _ := oruWithName(t, jpImages[0].name, CharsetIR87).Wire()
	require.Contains(t, string(segment(wire, "PID")), "|\x1b$BEDCf\x1b(B^\x1b$B0lO:\x1b(B^^^^^^I~")
}

// ISO IR13: kana as JIS X 0201 half-width katakana bytes, kanji as '?'.
func TestORUCharsetIR13(t *testing.T) {
	m := oruWithName(t, jpImages[1].name, CharsetIR13)
	require.Equal(t, "~ISO IR13", m.msh().GetRaw("18"))
	wire, n := m.Wire()
	_, base := oruWithName(t, "", CharsetIR13).Wire() // radgate's own text (the em dash)
	require.Equal(t, base+4, n, "山田 and 太郎 cannot be sent")
	pid := string(segment(wire, "PID"))
	require.Contains(t, pid, "|??^??^^^^^^I~\xd4\xcf\xc0\xde^\xc0\xdb\xb3^^^^^^P~\xd4\xcf\xc0\xde^\xc0\xdb\xb3^^^^^^A")
}

// The default stays UTF-8: MSH-18 UNICODE UTF-8, the wire is Encode.
func TestORUCharsetDefault(t *testing.T) {
	m := oruWithName(t, jpImages[0].name, "")
	require.Equal(t, CharsetUTF8, m.Charset())
	wire, n := m.Wire()
	require.Zero(t, n)
	require.Equal(t, m.Encode(), wire)
	require.Contains(t, string(segment(wire, "PID")), "|田中^一郎^^^^^^I~たなか^いちろう^^^^^^P~Tanaka^Ichiro^^^^^^A")
	require.Error(t, CheckCharset("SJIS"))
}

// A study pushed to radgate, its ORU sent to a real HL7 receiver
// (python3-hl7) configured for ISO IR87: PID-3 and PID-5 come from the
// image in radgate's image store (adapters/dimse Archive, as the Storage
// SCP keeps it; never from the outbox, which holds no name), PID-5 in JIS
// X 0208 by escape sequences. The store's study carries the decoded
// Institution Name that facility matching reads.
func TestResultSinkPushedStudyIR87OnPythonReceiver(t *testing.T) {
	needPeer(t, false)
	ctx := t.Context()
	js := embeddedJS(t)
	peer := startReceiver(t, "")
	store := newImageStore(t, "jp-ir87-kanji.dcm")
	archive, err := dimse.EnsureArchive(ctx, js, dimse.ArchiveLimits{})
	require.NoError(t, err)
	for _, part10 := range store.files {
		rec, err := dimse.RecordOf(part10)
		require.NoError(t, err)
		require.NoError(t, archive.Put(ctx, rec, part10))
	}
	st, err := archive.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: store.meta(t, "jp-ir87-kanji.dcm").StudyInstanceUID})
	require.NoError(t, err)
	require.Equal(t, "京都府立医科大学附属病院", st.InstitutionName)
	sink, err := NewResultSink(ResultSinkOptions{
		JS: js, Address: peer.addr,
		ORU:      ORUOptions{ReceivingApplication: HD{Namespace: "RIS"}, Charset: CharsetIR87},
		Patients: &Patients{Images: archive},
		Client:   ClientOptions{DialTimeout: 5 * time.Second, AckTimeout: 10 * time.Second, MaxAttempts: 1},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sink.Close() })
	r := pushedResult(store.meta(t, "jp-ir87-kanji.dcm"), true)
	r.ID = hexID(t, 12)
	_, err = sink.Deliver(ctx, r)
	require.NoError(t, err)
	got := peer.next(t)
	require.Contains(t, string(segment(got, "MSH")), "|~ISO IR87")
	pid := string(segment(got, "PID"))
	require.Contains(t, pid, "|JP-0001")
	require.Contains(t, pid, "|\x1b$BEDCf\x1b(B^\x1b$B0lO:\x1b(B^^^^^^I~\x1b$B$?$J$+\x1b(B^\x1b$B$$$A$m$&\x1b(B^^^^^^P~Tanaka^Ichiro^^^^^^A")

	outbox, err := OpenOutbox(ctx, js, false)
	require.NoError(t, err)
	_, raw, err := outbox.Get(ctx, r.ID)
	require.NoError(t, err)
	require.Contains(t, string(segment(raw, "PID")), "|"+UnknownName, "the outbox keeps no name")
	require.Contains(t, string(segment(raw, "PID")), "|JP-0001")
}

// An ORM from a Japanese RIS in ISO IR87 (and one in ISO IR13): the server
// decodes the message before splitting it into fields, so PID-5 — whose
// JIS X 0208 bytes hold '^' (ま is 0x24 0x5E) — reaches the intake, the
// Received store and the ORU's PID-5 whole.
func TestIntakeJapaneseCharsets(t *testing.T) {
	var got = make(chan *Message, 4)
	s := startServer(t, ServerOptions{Handler: func(_ context.Context, msg *Message) *Message {
		got <- msg
		return NewACK(msg, AA)
	}})
	c := newClient(t, s.Addr().String(), ClientOptions{})
	for _, tc := range []struct {
		charset, pid5 string
		want          Name
	}{
		{CharsetIR87, "山田^太郎^^^^^L^I~やまだ^たろう^^^^^L^P", Name{Family: "山田", Given: "太郎", Type: "L", Representation: "I",
			Others: []Name{{Family: "やまだ", Given: "たろう", Type: "L", Representation: "P"}}}},
		{CharsetIR13, "ﾔﾏﾀﾞ^ﾀﾛｳ^^^^^L^P", Name{Family: "ﾔﾏﾀﾞ", Given: "ﾀﾛｳ", Type: "L", Representation: "P"}},
	} {
		msg := withControlID(t, mustParse(t, readFixture(t, "orm_o01.hl7")), "JP-"+tc.charset[len(tc.charset)-2:])
		require.NoError(t, msg.msh().SetRaw("18", "~"+tc.charset))
		require.NoError(t, msg.Segment("PID").SetRaw("5", tc.pid5))
		wire, n := msg.Wire()
		require.Zero(t, n)
		require.NotContains(t, string(wire), "山", "sent converted")
		_, err := c.Send(t.Context(), msg)
		require.NoError(t, err)
		in := <-got
		require.Equal(t, tc.pid5, in.Segment("PID").GetRaw("5"), tc.charset)
		require.Equal(t, tc.want, nameOfPID(in), tc.charset)
		require.Equal(t, tc.pid5, tc.want.xpn(DefaultDelimiters), "the ORU's PID-5 is the ORM's")
		ev, err := OrderEvent(in)
		require.NoError(t, err, tc.charset)
		require.Equal(t, "ACC-778899", ev.Accession.Value)
	}
}

// FuzzFromWire: any message body under MSH-18 ISO IR87, ISO IR13 or
// nothing: FromWire never panics, ISO IR87 always gives valid UTF-8, and a
// message that parses, sent in ISO IR87 (Message.Wire) and read back
// (FromWire), is itself again unless a character had to be substituted.
func FuzzFromWire(f *testing.F) {
	f.Add([]byte("PID|1||JP-0001||\x1b$BEDCf\x1b(B^\x1b$B0lO:\x1b(B^^^^^L^I~\x1b$B$d$^$@\x1b(B"), uint8(0))
	f.Add([]byte("PID|1||JP-0002||\xd4\xcf\xc0\xde^\xc0\xdb\xb3"), uint8(1))
	f.Add([]byte("PID|1||X||Doe^Jane"), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, kind uint8) {
		cs := []string{"~ISO IR87", "~ISO IR13", ""}[int(kind)%3]
		raw := append([]byte("MSH|^~\\&|A|B|C|D|20240131||ORU^R01|1|P|2.5.1||||||"+cs+"\r"), body...)
		out := FromWire(raw)
		if cs == "~ISO IR87" && !utf8.Valid(out) {
			t.Fatalf("FromWire gave invalid UTF-8 %q", out)
		}
		m, err := Parse(out)
		if err != nil || m.wireCharset() != CharsetIR87 {
			return
		}
		enc := string(m.Encode())
		if strings.ContainsAny(enc, "\x1b¥‾—−") || strings.ContainsFunc(enc, func(r rune) bool { return r >= 0xFF61 && r <= 0xFF9F }) {
			return
		}
		wire, n := m.Wire()
		if n > 0 {
			return
		}
		if back := string(FromWire(wire)); back != enc {
			t.Fatalf("ISO IR87 round trip:\n%q\n%q", enc, back)
		}
	})
}
