package fhir

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"image/png"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Codes written on every result.
var (
	// CategoryImaging is Observation.category.
	CategoryImaging = Coding{System: SystemObservationCategory, Code: "imaging", Display: "Imaging"}
	// CategoryRadiology is DiagnosticReport.category, with its v2-0074 twin
	// CategoryRadiologyV2.
	CategoryRadiology   = Coding{System: SystemLOINC, Code: "LP29684-5", Display: "Radiology"}
	CategoryRadiologyV2 = Coding{System: SystemV20074, Code: "RAD", Display: "Radiology"}
	// ReportCode is DiagnosticReport.code: LOINC 18748-4 "Diagnostic imaging
	// study". A chest-specific code (36643-5 and friends) would name views
	// the engine does not know; the engine and finding are in code.text.
	ReportCode = Coding{System: SystemLOINC, Code: "18748-4", Display: "Diagnostic imaging study"}
)

// ErrInvalidResult is wrapped by the builders' errors: the ResultInput
// cannot make a valid resource.
var ErrInvalidResult = errors.New("invalid result")

// Engine describes the algorithm that produced a result.
type Engine struct {
	ID      string
	Name    string
	Version string
	// Disclaimer is carried word for word by every resource that reports a
	// score.
	Disclaimer string
	// Finding is what the engine scores; DefaultFinding when empty.
	Finding Coding
}

// ResultInput is one order × engine result, in plain values.
type ResultInput struct {
	// ID is the result id, deterministic per order × engine × model version;
	// every identifier written for the result derives from it.
	ID string

	// ServiceRequest, ImagingStudy and Patient are the order's resources:
	// literal references when they have an id on the FHIR server, else by
	// identifier. When ServiceRequest is empty and Accession is known, the
	// order is referenced by its accession number; when ImagingStudy is empty
	// and StudyInstanceUID is known, the study by its UID.
	ServiceRequest   *Reference
	ImagingStudy     *Reference
	Patient          *Reference
	Accession        *Identifier
	StudyInstanceUID string
	// SeriesInstanceUID and SOPInstanceUID name the scored image.
	SeriesInstanceUID string
	SOPInstanceUID    string

	Engine Engine

	// Probability is the engine's output in 0..1; the confidence is
	// 100 × Probability, in %.
	Probability float64
	// Tier is Low, Mid or High (any case), from the unrounded probability.
	Tier string
	// Marked is true when the region of interest was marked: Preview (or,
	// without one, HeatmapPNG) must then hold the heatmap, and a Media is
	// written with it.
	Marked bool
	// Preview is the heatmap overlay as a small JPEG (inference.RenderPreview):
	// what the Media carries, so that a result costs the FHIR server tens
	// of kilobytes; the overlay at full resolution goes to the PACS.
	Preview []byte
	// PreviewWidth and PreviewHeight are read from the JPEG when zero.
	PreviewWidth, PreviewHeight int
	// HeatmapPNG is the overlay at full resolution, used by the Media only
	// when there is no Preview (a result scored before previews existed).
	HeatmapPNG []byte
	// HeatmapWidth and HeatmapHeight are read from the PNG when zero.
	HeatmapWidth  int
	HeatmapHeight int

	// PDF, when set, is the human-readable report (see package report),
	// attached to the DiagnosticReport as presentedForm (application/pdf).
	PDF []byte

	// Reason explains a result that was not scored (BuildTaskBundle).
	Reason string
	// Caveats are what the score must be read with ("patient age unknown:
	// …"): each is an Observation note before the disclaimer, and the
	// DiagnosticReport conclusion carries them between its sentence and
	// the disclaimer (see Conclusion).
	Caveats []string

	// ScoredAt is when the engine produced the result (effective time);
	// Issued when radgate released it (defaults to ScoredAt). The current
	// time stands in for a zero ScoredAt.
	ScoredAt time.Time
	Issued   time.Time
}

// TaskStatus is the status of the Task written for a result that was not
// scored.
type TaskStatus string

// Statuses BuildTaskBundle writes.
const (
	// TaskRejected: the study holds nothing the engine may score.
	TaskRejected TaskStatus = "rejected"
	// TaskFailed: the order could not be scored.
	TaskFailed TaskStatus = "failed"
)

// Tier codes of CodeSystemTier.
var tiers = map[string]Coding{
	"low":  {System: CodeSystemTier, Code: "low", Display: "Low"},
	"mid":  {System: CodeSystemTier, Code: "mid", Display: "Mid"},
	"high": {System: CodeSystemTier, Code: "high", Display: "High"},
}

// TierCoding returns the CodeSystemTier coding of a tier name (Low, Mid,
// High, any case).
func TierCoding(tier string) (Coding, bool) {
	c, ok := tiers[strings.ToLower(strings.TrimSpace(tier))]
	return c, ok
}

// ConfidencePercent formats a probability as the confidence radgate writes:
// percent with one decimal ("87.3").
func ConfidencePercent(p float64) string {
	return strconv.FormatFloat(math.Round(p*1000)/10, 'f', 1, 64)
}

// ResultIdentifier is the identifier of the DiagnosticReport (or Task)
// written for result id.
func ResultIdentifier(resultID string) Identifier {
	return Identifier{System: SystemResult, Value: resultID}
}

// EngineIdentifier is the identifier of an engine's Device.
func EngineIdentifier(e Engine) Identifier {
	v := e.ID
	if e.Version != "" {
		v += "@" + e.Version
	}
	return Identifier{System: SystemEngine, Value: v}
}

// IfNoneExist is the conditional-create query matching identifier id.
func IfNoneExist(id Identifier) string {
	return "identifier=" + url.QueryEscape(id.System+"|"+id.Value)
}

// BuildResultBundle writes a scored result as one transaction Bundle of
// conditional creates, linked by urn:uuid fullUrls:
//
//   - Device: the engine (name, version; identifier SystemEngine
//     "<id>@<version>"), shared by every result of that engine version.
//   - Media (only when Marked): the heatmap PNG, basedOn the ServiceRequest.
//   - Observation: the finding (Engine.Finding, SNOMED CT 233604007
//     Pneumonia by default) with the confidence as valueQuantity in UCUM "%"
//     and the tier as a component (code CodeSystemRadgate#confidence-tier,
//     value a CodeSystemTier coding low/mid/high). The tier is a component
//     rather than a second Observation because it is not a separate
//     measurement: it is a banding of this very confidence, so it travels
//     with it and can never disagree with it. derivedFrom the ImagingStudy,
//     device the engine, note the caveats (ResultInput.Caveats), then the
//     disclaimer.
//   - DiagnosticReport: status final, category radiology (LOINC LP29684-5),
//     code LOINC 18748-4, basedOn the ServiceRequest, imagingStudy, result →
//     the Observation, media → the Media, conclusion stating confidence and
//     tier followed by the caveats and the disclaimer word for word (see
//     Conclusion),
//     presentedForm the PDF report when ResultInput.PDF is set.
//
// Each entry's request.ifNoneExist matches its identifier (SystemResult
// with the result id, suffixed for the Observation and the Media), so
// posting the bundle again leaves one copy of each resource.
func BuildResultBundle(in ResultInput) ([]byte, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	tier, ok := TierCoding(in.Tier)
	if !ok {
		return nil, fmt.Errorf("%w: ResultInput.Tier: %q is not Low, Mid or High", ErrInvalidResult, in.Tier)
	}
	if math.IsNaN(in.Probability) || in.Probability < 0 || in.Probability > 1 {
		return nil, fmt.Errorf("%w: ResultInput.Probability: %v is outside 0..1", ErrInvalidResult, in.Probability)
	}
	var pic picture
	if in.Marked {
		var err error
		if pic, err = in.picture(); err != nil {
			return nil, err
		}
	}
	effective, issued := in.times()
	finding := in.Engine.Finding
	if finding.Code == "" {
		finding = DefaultFinding
	}
	findingName := finding.Display
	if findingName == "" {
		findingName = finding.Code
	}
	engineName := in.Engine.label()

	b := newTxBundle()
	deviceURL := b.device(in.Engine)

	srRef := in.serviceRequestRef()
	isRef := in.imagingStudyRef()
	patient := toR4Ref(in.Patient, "Patient")
	disclaimer := []r4.Annotation{{Text: in.Engine.Disclaimer}}
	// Caveats are notes, not components: they are sentences for the reader
	// about how far the score was checked (the patient's age against the
	// engine's intended use), not a coded measurement of the image; a note
	// is where the disclaimer already is, and every FHIR viewer shows it.
	notes := make([]r4.Annotation, 0, len(in.Caveats)+1)
	for _, c := range in.Caveats {
		notes = append(notes, r4.Annotation{Text: c})
	}
	notes = append(notes, disclaimer...)

	var mediaURL string
	if in.Marked {
		id := Identifier{System: SystemResult, Value: in.ID + "/media"}
		title := "AI heatmap (class activation map): " + findingName
		if in.SOPInstanceUID != "" {
			title += ", SOP Instance UID " + in.SOPInstanceUID
		}
		m := r4.Media{
			Identifier:      []r4.Identifier{toR4Identifier(id)},
			BasedOn:         refList(srRef),
			Status:          r4.EventStatusCompleted,
			Type:            concept("", Coding{System: SystemMediaType, Code: "image", Display: "Image"}),
			Subject:         patient,
			CreatedDateTime: &effective,
			Issued:          &issued,
			Device:          &r4.Reference{Reference: ptr(deviceURL), Type: ptr("Device")},
			Height:          &pic.h,
			Width:           &pic.w,
			Content: r4.Attachment{
				ContentType: ptr(pic.contentType),
				Data:        ptr(base64.StdEncoding.EncodeToString(pic.data)),
				Size:        ptr(len(pic.data)),
				Title:       &title,
				Creation:    &effective,
			},
			Note: disclaimer,
		}
		var err error
		if mediaURL, err = b.add("Media", "media:"+in.ID, id, m); err != nil {
			return nil, err
		}
	}

	obsID := Identifier{System: SystemResult, Value: in.ID + "/observation"}
	value := json.Number(ConfidencePercent(in.Probability))
	obs := r4.Observation{
		Identifier:        []r4.Identifier{toR4Identifier(obsID)},
		BasedOn:           refList(srRef),
		Status:            r4.ObservationStatusFinal,
		Category:          []r4.CodeableConcept{*concept("", CategoryImaging)},
		Code:              *concept(findingName+" (AI confidence)", finding),
		Subject:           patient,
		EffectiveDateTime: &effective,
		Issued:            &issued,
	}
	obs.ValueQuantity = &r4.Quantity{Value: &value, Unit: ptr("%"), System: ptr(SystemUCUM), Code: ptr("%")}
	obs.Component = []r4.ObservationComponent{{
		Code:                 *concept("AI confidence tier", Coding{System: CodeSystemRadgate, Code: CodeConfidenceTier, Display: "AI confidence tier"}),
		ValueCodeableConcept: concept(tier.Display, tier),
	}}
	obs.Note = notes
	obs.Device = &r4.Reference{Reference: ptr(deviceURL), Type: ptr("Device")}
	obs.DerivedFrom = refList(isRef)
	obsURL, err := b.add("Observation", "observation:"+in.ID, obsID, obs)
	if err != nil {
		return nil, err
	}

	conclusion := conclusionSentence(findingName, in.Probability, tier, engineName, in.Marked) + " " + caveatSentences(in.Caveats) + in.Engine.Disclaimer
	drID := ResultIdentifier(in.ID)
	dr := r4.DiagnosticReport{
		Identifier:        []r4.Identifier{toR4Identifier(drID)},
		BasedOn:           refList(srRef),
		Status:            r4.DiagnosticReportStatusFinal,
		Category:          []r4.CodeableConcept{*concept("", CategoryRadiology, CategoryRadiologyV2)},
		Code:              *concept("AI analysis: "+engineName, ReportCode),
		Subject:           patient,
		EffectiveDateTime: &effective,
		Issued:            &issued,
		Result:            []r4.Reference{{Reference: &obsURL, Type: ptr("Observation")}},
		ImagingStudy:      refList(isRef),
		Conclusion:        &conclusion,
	}
	if len(in.PDF) > 0 {
		dr.PresentedForm = []r4.Attachment{{
			ContentType: ptr("application/pdf"),
			Language:    ptr("en"),
			Data:        ptr(base64.StdEncoding.EncodeToString(in.PDF)),
			Size:        ptr(len(in.PDF)),
			Title:       ptr("AI decision support report: " + engineName),
			Creation:    &effective,
		}}
	}
	if mediaURL != "" {
		dr.Media = []r4.DiagnosticReportMedia{{
			Comment: ptr("AI heatmap: region of interest"),
			Link:    r4.Reference{Reference: &mediaURL, Type: ptr("Media")},
		}}
	}
	drURL, err := b.add("DiagnosticReport", "report:"+in.ID, drID, dr)
	if err != nil {
		return nil, err
	}
	targets := []string{drURL, obsURL}
	if mediaURL != "" {
		targets = append(targets, mediaURL)
	}
	if err := b.provenance(in, issued, deviceURL, isRef, targets); err != nil {
		return nil, err
	}
	return b.marshal()
}

// caveatSentences writes caveats as sentences, each capitalised and ended
// with ". ", for the conclusion: "Patient age unknown: … against it. ".
func caveatSentences(caveats []string) string {
	var b strings.Builder
	for _, c := range caveats {
		c = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(c), "."))
		if c == "" {
			continue
		}
		b.WriteString(strings.ToUpper(c[:1]) + c[1:] + ". ")
	}
	return b.String()
}

// Conclusion is the sentence DiagnosticReport.conclusion opens with (the
// disclaimer follows it there): the finding, the confidence in % with one
// decimal, the tier and the engine, and, when the region is marked, a
// pointer to the heatmap. For example:
//
//	Pneumonia: AI confidence 87.7 % (tier High), by CXR pneumonia DenseNet-121 1.0.0. The region of interest is marked on the attached heatmap.
//
// The PDF report and the HL7 ORU print the same sentence. Errors wrap
// ErrInvalidResult (an unknown tier, a probability outside 0..1).
func Conclusion(in ResultInput) (string, error) {
	tier, ok := TierCoding(in.Tier)
	if !ok {
		return "", fmt.Errorf("%w: ResultInput.Tier: %q is not Low, Mid or High", ErrInvalidResult, in.Tier)
	}
	if math.IsNaN(in.Probability) || in.Probability < 0 || in.Probability > 1 {
		return "", fmt.Errorf("%w: ResultInput.Probability: %v is outside 0..1", ErrInvalidResult, in.Probability)
	}
	return conclusionSentence(in.Engine.findingName(), in.Probability, tier, in.Engine.label(), in.Marked), nil
}

func conclusionSentence(findingName string, p float64, tier Coding, engineName string, marked bool) string {
	s := fmt.Sprintf("%s: AI confidence %s %% (tier %s), by %s.", findingName, ConfidencePercent(p), tier.Display, engineName)
	if marked {
		s += " The region of interest is marked on the attached heatmap."
	}
	return s
}

// findingName is the display of the engine's finding (DefaultFinding when
// none is set), else its code.
func (e *Engine) findingName() string {
	f := e.Finding
	if f.Code == "" {
		f = DefaultFinding
	}
	if f.Display != "" {
		return f.Display
	}
	return f.Code
}

// BuildTaskBundle answers an order that was not scored: one transaction
// Bundle with the engine's Device and a Task (status rejected when the study
// holds nothing the engine may score, failed when scoring failed; intent
// order; statusReason the reason; focus and basedOn the ServiceRequest, or
// the ImagingStudy when no request is known; for the patient; owner the
// engine's Device). The Task's identifier is ResultIdentifier(in.ID), with a
// conditional create on it.
func BuildTaskBundle(in ResultInput, status TaskStatus) ([]byte, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	var st r4.TaskStatus
	var business string
	switch status {
	case TaskRejected:
		st, business = r4.TaskStatusRejected, "not scored"
	case TaskFailed:
		st, business = r4.TaskStatusFailed, "failed"
	default:
		return nil, fmt.Errorf("%w: task status %q is not %q or %q", ErrInvalidResult, status, TaskRejected, TaskFailed)
	}
	reason := strings.TrimSpace(in.Reason)
	if reason == "" {
		return nil, fmt.Errorf("%w: ResultInput.Reason: empty (a result that was not scored must say why)", ErrInvalidResult)
	}
	effective, issued := in.times()
	engineName := in.Engine.label()

	b := newTxBundle()
	deviceURL := b.device(in.Engine)

	srRef := in.serviceRequestRef()
	focus := srRef
	if focus == nil {
		focus = in.imagingStudyRef()
	}
	id := ResultIdentifier(in.ID)
	t := r4.Task{
		Identifier:      []r4.Identifier{toR4Identifier(id)},
		BasedOn:         refList(srRef),
		Status:          st,
		StatusReason:    &r4.CodeableConcept{Text: &reason},
		BusinessStatus:  &r4.CodeableConcept{Text: &business},
		Intent:          "order",
		Code:            concept("AI analysis: "+engineName, Coding{System: CodeSystemRadgate, Code: CodeAIAnalysis, Display: "AI analysis"}),
		Description:     ptr(fmt.Sprintf("%s did not score this order (%s): %s", engineName, business, reason)),
		Focus:           focus,
		For:             toR4Ref(in.Patient, "Patient"),
		ExecutionPeriod: &r4.Period{Start: &effective, End: &issued},
		AuthoredOn:      &issued,
		LastModified:    &issued,
		Owner:           &r4.Reference{Reference: &deviceURL, Type: ptr("Device")},
		Note:            []r4.Annotation{{Text: in.Engine.Disclaimer}},
	}
	taskURL, err := b.add("Task", "task:"+in.ID, id, t)
	if err != nil {
		return nil, err
	}
	if err := b.provenance(in, issued, deviceURL, in.imagingStudyRef(), []string{taskURL}); err != nil {
		return nil, err
	}
	return b.marshal()
}

// ProvenanceID is the id of the Provenance written for result id. Provenance
// has no identifier element for a conditional create, so it is written with
// PUT at this deterministic id: a redelivered result replaces it with the
// same content instead of adding a second one.
func ProvenanceID(resultID string) string { return "radgate-" + resultID }

// provenance adds the Provenance of a result: what produced it (the engine's
// Device, name and version), from what (the ImagingStudy, role source), when
// (recorded = issued), and what it covers (targets). The policy names the
// engine version, so a model change shows in the audit trail.
func (b *txBundle) provenance(in ResultInput, issued, deviceURL string, study *r4.Reference, targets []string) error {
	prov := r4.Provenance{
		Id:       ptr(ProvenanceID(in.ID)),
		Recorded: issued,
		Policy:   []string{"urn:radgate:engine:" + in.Engine.ID + ":" + in.Engine.Version},
		Activity: concept("AI analysis", Coding{System: CodeSystemRadgate, Code: CodeAIAnalysis, Display: "AI analysis"}),
		Agent: []r4.ProvenanceAgent{{
			Type: concept("Assembler", Coding{System: "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
				Code: "assembler", Display: "Assembler"}),
			Who: r4.Reference{Reference: ptr(deviceURL), Type: ptr("Device"),
				Display: ptr(in.Engine.Name + " " + in.Engine.Version)},
		}},
	}
	for _, t := range targets {
		prov.Target = append(prov.Target, r4.Reference{Reference: ptr(t)})
	}
	if study != nil {
		prov.Entity = []r4.ProvenanceEntity{{Role: r4.ProvenanceEntityRoleSource, What: *study}}
	}
	raw, err := json.Marshal(prov)
	if err != nil {
		return fmt.Errorf("writing Provenance: %w", err)
	}
	full := uuidURN("provenance:" + in.ID)
	b.entries = append(b.entries, r4.BundleEntry{
		FullUrl:  &full,
		Resource: raw,
		Request:  &r4.BundleEntryRequest{Method: r4.HTTPVerbPUT, Url: "Provenance/" + ProvenanceID(in.ID)},
	})
	return nil
}

func (in *ResultInput) validate() error {
	switch {
	case strings.TrimSpace(in.ID) == "":
		return fmt.Errorf("%w: ResultInput.ID: empty", ErrInvalidResult)
	case strings.TrimSpace(in.Engine.ID) == "":
		return fmt.Errorf("%w: ResultInput.Engine.ID: empty", ErrInvalidResult)
	case strings.TrimSpace(in.Engine.Disclaimer) == "":
		return fmt.Errorf("%w: ResultInput.Engine.Disclaimer: empty (every result carries the disclaimer)", ErrInvalidResult)
	}
	return nil
}

// picture is what a Media carries.
type picture struct {
	data        []byte
	contentType string
	w, h        int
}

// picture is the Media's picture of a marked result: the Preview JPEG, or
// the HeatmapPNG when there is no preview.
func (in *ResultInput) picture() (picture, error) {
	if len(in.Preview) > 0 {
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(in.Preview))
		if err != nil {
			return picture{}, fmt.Errorf("%w: ResultInput.Preview: not a JPEG: %v", ErrInvalidResult, err)
		}
		return picture{in.Preview, "image/jpeg", cmp.Or(in.PreviewWidth, cfg.Width), cmp.Or(in.PreviewHeight, cfg.Height)}, nil
	}
	if len(in.HeatmapPNG) == 0 {
		return picture{}, fmt.Errorf("%w: ResultInput.Preview and HeatmapPNG: empty, but the result is marked", ErrInvalidResult)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(in.HeatmapPNG))
	if err != nil {
		return picture{}, fmt.Errorf("%w: ResultInput.HeatmapPNG: not a PNG: %v", ErrInvalidResult, err)
	}
	return picture{in.HeatmapPNG, "image/png", cmp.Or(in.HeatmapWidth, cfg.Width), cmp.Or(in.HeatmapHeight, cfg.Height)}, nil
}

func (in *ResultInput) times() (effective, issued string) {
	scored := in.ScoredAt
	if scored.IsZero() {
		scored = time.Now()
	}
	iss := in.Issued
	if iss.IsZero() {
		iss = scored
	}
	return formatInstant(scored), formatInstant(iss)
}

func (e *Engine) label() string {
	name := e.Name
	if name == "" {
		name = e.ID
	}
	if e.Version != "" {
		name += " " + e.Version
	}
	return name
}

// serviceRequestRef references the order: as given, else by accession.
func (in *ResultInput) serviceRequestRef() *r4.Reference {
	if !in.ServiceRequest.IsZero() {
		return toR4Ref(in.ServiceRequest, "ServiceRequest")
	}
	if in.Accession != nil && in.Accession.Value != "" {
		id := toR4Identifier(*in.Accession)
		id.Type = concept("", Coding{System: SystemV20203, Code: CodeACSN, Display: "Accession ID"})
		return &r4.Reference{Type: ptr("ServiceRequest"), Identifier: &id}
	}
	return nil
}

// imagingStudyRef references the study: as given, else by Study Instance UID.
func (in *ResultInput) imagingStudyRef() *r4.Reference {
	if !in.ImagingStudy.IsZero() {
		return toR4Ref(in.ImagingStudy, "ImagingStudy")
	}
	if uid := strings.TrimPrefix(strings.TrimSpace(in.StudyInstanceUID), "urn:oid:"); uid != "" {
		id := toR4Identifier(Identifier{System: SystemDICOMUID, Value: "urn:oid:" + uid})
		return &r4.Reference{Type: ptr("ImagingStudy"), Identifier: &id}
	}
	return nil
}

// txBundle accumulates the entries of a transaction Bundle.
type txBundle struct {
	entries []r4.BundleEntry
}

func newTxBundle() *txBundle { return &txBundle{} }

// add appends a conditional create of res, with a fullUrl derived from seed.
func (b *txBundle) add(resourceType, seed string, id Identifier, res any) (string, error) {
	raw, err := marshalResource(res)
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", resourceType, err)
	}
	full := uuidURN(seed)
	b.entries = append(b.entries, r4.BundleEntry{
		FullUrl:  &full,
		Resource: raw,
		Request: &r4.BundleEntryRequest{
			Method:      r4.HTTPVerbPOST,
			Url:         resourceType,
			IfNoneExist: ptr(IfNoneExist(id)),
		},
	})
	return full, nil
}

// device adds the engine's Device and returns its fullUrl.
func (b *txBundle) device(e Engine) string {
	id := EngineIdentifier(e)
	name := e.Name
	if name == "" {
		name = e.ID
	}
	d := r4.Device{
		Identifier:  []r4.Identifier{toR4Identifier(id)},
		Status:      ptr(r4.FHIRDeviceStatusActive),
		DeviceName:  []r4.DeviceDeviceName{{Name: name, Type: r4.DeviceNameTypeModelName}},
		ModelNumber: ptr(e.ID),
		Type:        &r4.CodeableConcept{Text: ptr("AI algorithm (imaging decision support software)")},
		Note:        []r4.Annotation{{Text: e.Disclaimer}},
	}
	if e.Version != "" {
		d.Version = []r4.DeviceVersion{{Value: e.Version}}
	}
	full, err := b.add("Device", "device:"+id.Value, id, d)
	if err != nil { // cannot happen: Device holds strings only
		panic(err)
	}
	return full
}

func (b *txBundle) marshal() ([]byte, error) {
	// encoding/json re-reads (compacts) what a json.Marshaler returns,
	// at every level: the Bundle's MarshalJSON, then each entry's
	// resource — tens of kilobytes of base64 each time for a report with
	// its PDF and preview. So the Bundle is written around placeholders
	// and the resources, compact already (marshalResource), put in their
	// place: the same bytes, read once.
	entries := make([]r4.BundleEntry, len(b.entries))
	copy(entries, b.entries)
	size := 0
	for i := range entries {
		entries[i].Resource = json.RawMessage(resourcePlaceholder(i))
		size += len(b.entries[i].Resource)
	}
	env, err := json.Marshal(r4.Bundle{Type: r4.BundleTypeTransaction, Entry: entries})
	if err != nil {
		return nil, fmt.Errorf("writing Bundle: %w", err)
	}
	out := make([]byte, 0, len(env)+size)
	rest := env
	for i, e := range b.entries {
		ph := []byte(resourcePlaceholder(i))
		at := bytes.Index(rest, ph)
		if at < 0 || bytes.Contains(rest[at+len(ph):], ph) {
			// A value of the envelope holds the placeholder's text: write
			// it the plain way.
			out, err := json.Marshal(r4.Bundle{Type: r4.BundleTypeTransaction, Entry: b.entries})
			if err != nil {
				return nil, fmt.Errorf("writing Bundle: %w", err)
			}
			return out, nil
		}
		out = append(append(out, rest[:at]...), e.Resource...)
		rest = rest[at+len(ph):]
	}
	return append(out, rest...), nil
}

// resourcePlaceholder stands for entry i's resource while the Bundle
// around it is written: a JSON string no FHIR value holds (it starts with
// a NUL).
func resourcePlaceholder(i int) string { return `"\u0000radgate-entry-` + strconv.Itoa(i) + `"` }

// marshalResource writes a resource as JSON. The FHIR models write
// themselves (MarshalJSON, through encoding/json, so compact and
// HTML-escaped already): calling that directly spares encoding/json
// compacting the whole of it once more.
func marshalResource(res any) ([]byte, error) {
	if m, ok := res.(json.Marshaler); ok {
		return m.MarshalJSON()
	}
	return json.Marshal(res)
}

// uuidURN derives a stable urn:uuid (RFC 9562 version 8 layout) from seed,
// so a bundle built twice from the same input is byte-identical.
func uuidURN(seed string) string {
	sum := sha256.Sum256([]byte("radgate:" + seed))
	u := sum[:16]
	u[6] = (u[6] & 0x0f) | 0x80
	u[8] = (u[8] & 0x3f) | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func formatInstant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func concept(text string, cs ...Coding) *r4.CodeableConcept {
	cc := &r4.CodeableConcept{}
	for _, c := range cs {
		rc := r4.Coding{Code: ptr(c.Code)}
		if c.System != "" {
			rc.System = ptr(c.System)
		}
		if c.Display != "" {
			rc.Display = ptr(c.Display)
		}
		cc.Coding = append(cc.Coding, rc)
	}
	if text != "" {
		cc.Text = &text
	}
	return cc
}

func toR4Identifier(id Identifier) r4.Identifier {
	out := r4.Identifier{Value: ptr(id.Value)}
	if id.System != "" {
		out.System = ptr(id.System)
	}
	return out
}

// toR4Ref converts a reference; a reference by identifier gets typ as its
// type. nil for a reference to nothing.
func toR4Ref(r *Reference, typ string) *r4.Reference {
	if r.IsZero() {
		return nil
	}
	out := &r4.Reference{}
	if r.Reference != "" {
		out.Reference = ptr(r.Reference)
	} else {
		id := toR4Identifier(*r.Identifier)
		out.Identifier = &id
		out.Type = ptr(typ)
	}
	if r.Display != "" {
		out.Display = ptr(r.Display)
	}
	return out
}

func refList(r *r4.Reference) []r4.Reference {
	if r == nil {
		return nil
	}
	return []r4.Reference{*r}
}

func ptr[T any](v T) *T { return &v }
