package hl7v2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/dicomcs"
	"github.com/radgate/radgate/inference"
)

// Patient names are never part of radgate's state: not in an order event,
// the order store, a result, the ORU outbox or a log line. Where an ORU^R01
// needs PID-5 it is read at send time from the order's source: the FHIR
// Patient the order points at, or the ORM/OMI as received (Received).

// The stream Received keeps.
const (
	// StreamReceived keeps, for each order an ORM^O01 or OMI^O23 gave
	// radgate, the MSH and the PID of the last such message as received,
	// cut to PID-1, PID-3 and PID-5: the order's source for the ORU's
	// PID-5. One message per
	// order (subject SubjectReceived + order id), kept as long as the
	// ORDERS stream keeps intake events (ReceivedMaxAge).
	StreamReceived = "RADGATE_HL7_RECEIVED"
	// SubjectReceived prefixes the order id.
	SubjectReceived = "radgate.hl7.received."
	// ReceivedMaxAge is the ORDERS stream's retention.
	ReceivedMaxAge = 30 * 24 * time.Hour
)

// ErrNotReceived: Received holds no message for the order (not an HL7
// order, or older than ReceivedMaxAge).
var ErrNotReceived = errors.New("no HL7 order message kept for this order")

// Received is StreamReceived. NewReceived does no I/O; the stream is
// created on first use.
type Received struct {
	js jetstream.JetStream

	mu     sync.Mutex
	stream jetstream.Stream
}

// NewReceived returns the store on js.
func NewReceived(js jetstream.JetStream) *Received { return &Received{js: js} }

func (r *Received) open(ctx context.Context) (jetstream.Stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil {
		return r.stream, nil
	}
	st, err := r.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              StreamReceived,
		Description:       "MSH and PID of the last ORM/OMI of each HL7 order, as received (the ORU's PID-5 source)",
		Subjects:          []string{SubjectReceived + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxAge:            ReceivedMaxAge,
		Discard:           jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("hl7v2: creating stream %s: %w", StreamReceived, err)
	}
	r.stream = st
	return st, nil
}

// Keep stores msg's MSH and PID-1, -3 and -5, as received, for orderID,
// replacing what was kept for it before.
func (r *Received) Keep(ctx context.Context, orderID string, msg *Message) error {
	if _, err := r.open(ctx); err != nil {
		return err
	}
	pid := msg.Segment("PID")
	if pid == nil {
		return nil
	}
	// Only what the ORU needs: PID-1, PID-3 and PID-5 as received (no
	// birth date, address or other demographics).
	f := strings.Split(pid.String(), string(msg.d.FieldSep))
	keep := make([]string, min(len(f), 6))
	for i := range keep {
		if i != 2 && i != 4 {
			keep[i] = f[i]
		}
	}
	data := []byte(msg.msh().String() + "\r" + strings.Join(keep, string(msg.d.FieldSep)) + "\r")
	if _, err := r.js.Publish(ctx, SubjectReceived+orderID, data); err != nil {
		return fmt.Errorf("hl7v2: keeping the order message of %s: %w", orderID, err)
	}
	return nil
}

// Get returns what was kept for orderID (an MSH and a PID), or an error
// wrapping ErrNotReceived.
func (r *Received) Get(ctx context.Context, orderID string) (*Message, error) {
	st, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := st.GetLastMsgForSubject(ctx, SubjectReceived+orderID)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: order %s", ErrNotReceived, orderID)
	}
	if err != nil {
		return nil, fmt.Errorf("hl7v2: reading the order message of %s: %w", orderID, err)
	}
	m, err := Parse(raw.Data)
	if err != nil {
		return nil, fmt.Errorf("hl7v2: the order message kept for %s: %w", orderID, err)
	}
	return m, nil
}

// Name is a person's name as an XPN (PID-5): family name, given name,
// further given names, suffix, prefix, name type (table 0200: L legal, D
// display, …) and name representation (XPN-8, table 4000: A alphabetic, I
// ideographic, P phonetic). Others are further repetitions of PID-5: the
// other forms of one name (a DICOM Person Name's ideographic, phonetic and
// alphabetic groups). It exists only while an ORU is sent.
type Name struct {
	Family, Given, Middle, Suffix, Prefix, Type string
	Representation                              string
	Others                                      []Name
}

// IsZero reports whether n holds no name.
func (n Name) IsZero() bool {
	return strings.TrimSpace(n.Family+n.Given+n.Middle+n.Suffix+n.Prefix) == ""
}

// String is deliberately opaque, so a Name never reaches a log line.
func (n Name) String() string { return "[patient name]" }

// UnknownName is PID-5 when no name is available: PID-5 is required in
// v2.5.1, so the field is present, holding only name type U (unspecified,
// table 0200) — no name parts, and not HL7's explicit null `""`, which
// would tell the receiver to erase the name it has.
const UnknownName = "^^^^^^U"

// xpn writes n as an XPN in d's delimiters (UnknownName when zero).
func (n Name) xpn(d Delimiters) string {
	if n.IsZero() {
		return strings.ReplaceAll(UnknownName, "^", string(d.ComponentSep))
	}
	clean := func(s string) string { return d.Escape(strings.Join(strings.FieldsFunc(s, isControl), " ")) }
	out := joinComponents(d, clean(n.Family), clean(n.Given), clean(n.Middle), clean(n.Suffix), clean(n.Prefix), "", clean(n.Type), clean(n.Representation))
	for _, o := range n.Others {
		if !o.IsZero() {
			o.Others = nil
			out += string(d.RepetitionSep) + o.xpn(d)
		}
	}
	return out
}

// nameOfDICOM is PID-5 for a DICOM Person Name: one repetition per
// component group, the ideographic form first, then the phonetic, then
// the alphabetic (the order Japanese HL7 (JAHIS) systems read), each
// with its XPN-8 code.
func nameOfDICOM(p dicomcs.PersonName) Name {
	var names []Name
	for _, code := range []string{"I", "P", "A"} {
		for _, g := range p.Groups() {
			if g.Code == code {
				names = append(names, Name{Family: g.Family, Given: g.Given, Middle: g.Middle,
					Prefix: g.Prefix, Suffix: g.Suffix, Representation: g.Code})
			}
		}
	}
	if len(names) == 0 {
		return Name{}
	}
	n := names[0]
	n.Others = names[1:]
	return n
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

// nameOfPID reads PID-5: its first repetition, and the others (a Japanese
// RIS sends the kanji and the kana forms) as Others.
func nameOfPID(m *Message) Name {
	pid := m.Segment("PID")
	if pid == nil {
		return Name{}
	}
	var names []Name
	for r := 1; r <= max(pid.Reps(5), 1); r++ {
		v := func(comp int) string { return value(pid, 5, r, comp, 1) }
		n := Name{Family: v(1), Given: v(2), Middle: v(3), Suffix: v(4), Prefix: v(5), Type: v(7), Representation: v(8)}
		if isLatin1(m.Charset()) {
			for _, p := range []*string{&n.Family, &n.Given, &n.Middle, &n.Suffix, &n.Prefix} {
				*p = latin1(*p)
			}
		}
		if !n.IsZero() {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return Name{}
	}
	n := names[0]
	if len(names) > 1 {
		n.Others = names[1:]
	}
	return n
}

// Demographics is what an ORU's PID takes from the order's source when it
// is sent: the name for PID-5 and, for an order known only by a FHIR
// Patient reference, the identifier for PID-3.
type Demographics struct {
	Identifier *radgate.Identifier
	Name       Name
	// Source says where they were read ("Patient/12", "ORM"), for logs.
	Source string
}

// PatientSource looks up the Demographics of a result's order at send
// time. Errors wrapped with radgate.Transient are worth retrying.
type PatientSource interface {
	Demographics(ctx context.Context, r radgate.Result) (Demographics, error)
}

// FHIRReader reads a resource ("Patient/12") from the EHR's FHIR server;
// *fhirhttp.Client is one. Errors worth retrying are radgate.Transient.
type FHIRReader interface {
	Read(ctx context.Context, ref string) ([]byte, error)
}

// Patients is radgate's PatientSource: an order whose patient is a FHIR
// Patient reference is read from FHIR (GET on the reference); an HL7
// order's name comes from Received; an order with neither (a study pushed
// to radgate over DICOM, an ImagingStudy alone) takes its patient from the
// scored image, read from Images (radgate's image store, then the PACS):
// Patient's Name decoded by its Specific Character Set, Patient ID for
// PID-3 when the order has no identifier. Any may be nil.
type Patients struct {
	FHIR FHIRReader
	// FHIRBase is FHIR's base URL: an absolute Patient reference under it
	// is read there; one elsewhere is not followed.
	FHIRBase string
	Received *Received
	Images   radgate.StudySource
}

var _ PatientSource = (*Patients)(nil)

// Demographics implements PatientSource. A missing source is no error (no
// name, then); a FHIR Patient that cannot be read is, when the order has
// no patient identifier of its own (PID-3 would be empty).
func (p *Patients) Demographics(ctx context.Context, r radgate.Result) (Demographics, error) {
	o := r.Order
	hasID := o.Patient != nil && o.Patient.Identifier != nil && strings.TrimSpace(o.Patient.Identifier.Value) != ""
	if o.Patient != nil && o.Patient.Reference != "" {
		d, err := p.fromFHIR(ctx, o.Patient.Reference)
		switch {
		case err == nil:
			return d, nil
		case radgate.IsTransient(err) || !hasID:
			return Demographics{}, err
		}
		// The order has its own identifier: go on without the name.
	}
	if p.Received != nil && fromHL7(o) {
		m, err := p.Received.Get(ctx, o.ID)
		switch {
		case errors.Is(err, ErrNotReceived):
		case err != nil:
			return Demographics{}, radgate.Transient(err)
		default:
			return Demographics{Name: nameOfPID(m), Source: "ORM"}, nil
		}
	}
	if p.Images != nil && (o.Patient == nil || o.Patient.Reference == "") && !fromHL7(o) {
		return p.fromImage(ctx, r)
	}
	return Demographics{}, nil
}

// fromImage reads the patient of the result's scored image (else the first
// image the result names, else the study's first instance).
func (p *Patients) fromImage(ctx context.Context, r radgate.Result) (Demographics, error) {
	study, series, sop := r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID
	if study == "" {
		study = r.Order.StudyInstanceUID
	}
	if sop == "" {
		for _, im := range r.Images {
			if im.SOPInstanceUID != "" {
				series, sop = im.SeriesInstanceUID, im.SOPInstanceUID
				break
			}
		}
	}
	if study == "" && r.Order.Accession == nil {
		return Demographics{}, nil
	}
	if sop == "" {
		q := radgate.StudyQuery{StudyInstanceUID: study}
		if study == "" {
			q.AccessionNumber = r.Order.Accession.Value
		}
		st, err := p.Images.FindStudy(ctx, q)
		switch {
		case errors.Is(err, radgate.ErrStudyNotFound):
			return Demographics{}, nil
		case err != nil:
			return Demographics{}, fmt.Errorf("finding the study's images for the patient's name: %w", err)
		}
		study = st.StudyInstanceUID
		for _, se := range st.Series {
			if len(se.Instances) > 0 && sop == "" {
				series, sop = se.SeriesInstanceUID, se.Instances[0].SOPInstanceUID
			}
		}
		if sop == "" {
			return Demographics{}, nil
		}
	}
	data, err := p.Images.RetrieveInstance(ctx, study, series, sop)
	switch {
	case errors.Is(err, radgate.ErrStudyNotFound):
		return Demographics{}, nil
	case err != nil:
		return Demographics{}, fmt.Errorf("reading image %s for the patient's name: %w", sop, err)
	}
	x, err := inference.ReadText(data)
	if err != nil {
		// Not an image radgate can read the name from: no name, no retry.
		return Demographics{Source: "DICOM " + sop}, nil
	}
	d := Demographics{Source: "DICOM " + sop, Name: nameOfDICOM(x.PersonName(tag.PatientName))}
	if id, _ := x.String(tag.PatientID); id != "" && radgate.CheckIdentifier("Patient ID (0010,0020)", id, 0) == nil {
		d.Identifier = &radgate.Identifier{Value: id}
	}
	return d, nil
}

func fromHL7(o radgate.OrderStatus) bool {
	for _, s := range o.Sources {
		if s == Source || strings.HasPrefix(s, Source+":") {
			return true
		}
	}
	return false
}

// fhirPatient is what radgate reads of a FHIR Patient.
type fhirPatient struct {
	ResourceType string `json:"resourceType"`
	Identifier   []struct {
		Use    string `json:"use"`
		System string `json:"system"`
		Value  string `json:"value"`
		Type   struct {
			Coding []struct {
				Code string `json:"code"`
			} `json:"coding"`
		} `json:"type"`
	} `json:"identifier"`
	Name []struct {
		Use    string   `json:"use"`
		Text   string   `json:"text"`
		Family string   `json:"family"`
		Given  []string `json:"given"`
		Prefix []string `json:"prefix"`
		Suffix []string `json:"suffix"`
	} `json:"name"`
}

// nameTypes maps FHIR HumanName.use to table 0200.
var nameTypes = map[string]string{"official": "L", "usual": "D", "nickname": "N", "maiden": "M", "anonymous": "S", "temp": "T"}

func (p *Patients) fromFHIR(ctx context.Context, ref string) (Demographics, error) {
	local := ref
	if base := strings.TrimSuffix(p.FHIRBase, "/"); base != "" {
		local = strings.TrimPrefix(local, base+"/")
	}
	if i := strings.Index(local, "/_history/"); i >= 0 {
		local = local[:i]
	}
	typ, id, ok := strings.Cut(local, "/")
	if !ok || typ != "Patient" || id == "" || strings.Contains(id, "/") {
		return Demographics{}, fmt.Errorf("the order's patient %q is not a Patient on the FHIR server %s", ref, p.FHIRBase)
	}
	if p.FHIR == nil {
		return Demographics{}, fmt.Errorf("the order's patient is %s, and no FHIR server is configured to read it", local)
	}
	b, err := p.FHIR.Read(ctx, local)
	if err != nil {
		if radgate.IsTransient(err) {
			return Demographics{}, radgate.Transient(fmt.Errorf("reading the order's patient %s: %w", local, err))
		}
		return Demographics{}, fmt.Errorf("reading the order's patient %s: %w", local, err)
	}
	var pt fhirPatient
	if err := json.Unmarshal(b, &pt); err != nil || pt.ResourceType != "Patient" {
		return Demographics{}, fmt.Errorf("reading the order's patient %s: the FHIR server did not answer with a Patient", local)
	}
	d := Demographics{Source: local}
	// PID-3: the MR identifier, else the first with a value (not "old").
	for pass := 0; pass < 2 && d.Identifier == nil; pass++ {
		for _, id := range pt.Identifier {
			if strings.TrimSpace(id.Value) == "" || id.Use == "old" {
				continue
			}
			mr := false
			for _, c := range id.Type.Coding {
				mr = mr || c.Code == "MR"
			}
			if pass == 0 && !mr {
				continue
			}
			if err := radgate.CheckIdentifier(local+" identifier", id.Value, 0); err != nil {
				return Demographics{}, fmt.Errorf("the order's patient: %w", err)
			}
			if id.System != "" {
				if err := radgate.CheckIdentifier(local+" identifier system", id.System, radgate.MaxSystemLength); err != nil {
					return Demographics{}, fmt.Errorf("the order's patient: %w", err)
				}
			}
			d.Identifier = &radgate.Identifier{System: id.System, Value: id.Value}
			break
		}
	}
	// PID-5: the official name, else the usual one, else the first not old.
	best := -1
	for _, use := range []string{"official", "usual", ""} {
		for i, n := range pt.Name {
			if best < 0 && n.Use != "old" && (use == "" || n.Use == use) {
				best = i
			}
		}
	}
	if best >= 0 {
		n := pt.Name[best]
		name := Name{Family: n.Family, Prefix: strings.Join(n.Prefix, " "), Suffix: strings.Join(n.Suffix, " "), Type: nameTypes[n.Use]}
		if len(n.Given) > 0 {
			name.Given = n.Given[0]
			name.Middle = strings.Join(n.Given[1:], " ")
		}
		if name.IsZero() {
			name.Family = n.Text // a name given as text only
		}
		d.Name = name
	}
	return d, nil
}

// setPatientName writes the send-time name into an ORU's PID-5
// (UnknownName without one).
func setPatientName(m *Message, n Name) error {
	pid := m.Segment("PID")
	if pid == nil {
		return fmt.Errorf("%w: no PID segment", ErrInvalidResult)
	}
	return pid.SetRaw("5", n.xpn(m.d))
}
