package hl7v2

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// ORUOptions tune ORU.
type ORUOptions struct {
	// SendingApplication and SendingFacility are MSH-3 and MSH-4; the
	// application defaults to RADGATE.
	SendingApplication HD
	SendingFacility    HD
	// ReceivingApplication and ReceivingFacility are MSH-5 and MSH-6 (the
	// RIS).
	ReceivingApplication HD
	ReceivingFacility    HD
	// ControlID is MSH-10. By default it derives from Result.ID (the id
	// itself when it fits MSH-10's 20 characters, else a hash of it) and,
	// after the first result, the revision and status: "-r2" is appended
	// for amended revision 2, "-r2x" for the retraction of revision 2 (the
	// id part shortened to a hash prefix to keep 20 characters). A result
	// sent again carries the same control id and the receiver can
	// recognise the duplicate; each revision and retraction is a message
	// of its own.
	ControlID string
	// Time is MSH-7 and OBR-22 (results reported); zero means now.
	Time time.Time
	// ProcessingID is MSH-11; default "P".
	ProcessingID string
	// Delimiters of the message; zero means DefaultDelimiters.
	Delimiters Delimiters
	// Authorities maps identifier systems back to assigning authorities
	// (the same map as OrderOptions.Authorities).
	Authorities Authorities
	// PDF, when set, is the report as a PDF, attached as an ED OBX
	// (^application^pdf^Base64^…).
	PDF []byte
	// PatientName is PID-5, read from the order's source when the message
	// is sent (see PatientSource); zero writes UnknownName.
	PatientName Name
	// Charset is the character set MSH-18 declares (CharsetUTF8 when "",
	// CharsetIR87, CharsetIR13); Message.Wire converts to it.
	Charset string
}

// Observation identifiers (OBX-3) of the OBX segments ORU writes, coding
// system CodingSystemRadgate unless noted. The confidence OBX (NM, in %)
// is identified by the engine's finding instead (SNOMED CT 233604007
// Pneumonia by default), as the FHIR Observation is.
const (
	ObsTier             = "confidence-tier"   // CWE, code of CodingSystemTier
	ObsConclusion       = "conclusion"        // FT
	ObsDisclaimer       = "disclaimer"        // FT
	ObsCaveat           = "caveat"            // FT
	ObsAlgorithmName    = "algorithm-name"    // ST
	ObsAlgorithmVersion = "algorithm-version" // ST
	ObsReportPDF        = "report-pdf"        // ED
	// ObsStudyUID is DICOM's 110180 "Study Instance UID" (coding system
	// DCM), ST.
	ObsStudyUID = "110180"
)

// ORU builds the ORU^R01 that reports a result to a RIS (v2.5.1):
//
//	MSH  ORU^R01^ORU_R01, MSH-10 from Result.ID (see ORUOptions.ControlID)
//	PID  PID-3 the patient identifier, PID-5 ORUOptions.PatientName or,
//	     without one, UnknownName (^^^^^^U); no birth date
//	ORC  RE; ORC-2 placer order number, ORC-3 filler order number
//	OBR  OBR-2/3 as ORC-2/3, OBR-4 the ordered procedure (else LOINC
//	     18748-4 Diagnostic imaging study), OBR-7 scored at, OBR-18 the
//	     accession number, OBR-20 the result id, OBR-22 reported at,
//	     OBR-24 RAD, OBR-25 the result status (below)
//	NTE  notes, in this order, each when it applies: the revision an
//	     amended result replaces; the retraction and its reason; why the
//	     result is not scored; how many images were scored, then one NTE
//	     per image not scored (SOP Instance UID, view, reason)
//	OBX  NM  <finding>                 confidence, "%^percent^UCUM"
//	OBX  CWE confidence-tier           low|mid|high ^…^RADGATE-TIER
//	OBX  FT  conclusion                the FHIR report's conclusion sentence
//	OBX  FT  caveat                    one per Result.Caveats ("patient age unknown: …"),
//	                                   an OBX beside the score rather than an NTE, so a
//	                                   RIS that shows the observations shows it too
//	OBX  FT  disclaimer                word for word
//	OBX  ST  algorithm-name, -version  the engine
//	OBX  ST  110180^Study Instance UID^DCM, when known
//	OBX  ED  report-pdf                ^application^pdf^Base64^…, when given
//
// Every OBX has OBX-11 the observation status (below), OBX-14 the scoring
// time and OBX-18 the engine ("<engine id>@<version>^RADGATE"). The placer
// order number is the ServiceRequest's identifier; the filler order number
// is the accession number (the RIS, as order filler, usually keys its
// orders by it), else the result id. A not-applicable or failed result
// gets an NTE with the reason instead of the OBX segments.
//
// Result.Status sets OBR-25 (table 0123) and OBX-11 (table 0085):
//
//   - final (the first result, Revision 0 or 1): OBR-25 F, OBX-11 F; a
//     not-applicable or failed result OBR-25 X.
//   - amended (Revision 2 or more, replacing Revision-1): OBR-25 C and
//     OBX-11 C ("correction, replaces a final result"), whatever the
//     outcome, with an NTE naming the revision it replaces.
//   - retracted (withdrawing Revision): OBR-25 X ("no results available;
//     order cancelled") and OBX-11 W on every OBX ("post original as
//     wrong"): the observations of the revision, posted again as wrong,
//     with an NTE "AI result retracted (revision N): <RetractReason>".
//     ORC-5 is left empty.
//
// Errors wrap ErrInvalidResult: among them a final result with a Revision
// above 1 and an amended one with a Revision below 2.
func ORU(r radgate.Result, opts ORUOptions) (*Message, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidResult, fmt.Sprintf(format, args...))
	}
	patient := r.Order.Patient
	if patient == nil || patient.Identifier == nil || strings.TrimSpace(patient.Identifier.Value) == "" {
		return nil, bad("Result.Order.Patient: no patient identifier for PID-3")
	}
	var tier fhir.Coding
	switch r.Outcome {
	case radgate.OutcomeScored:
		var ok bool
		if tier, ok = fhir.TierCoding(r.Tier); !ok {
			return nil, bad("Result.Tier: %q is not Low, Mid or High", r.Tier)
		}
		if math.IsNaN(r.Probability) || r.Probability < 0 || r.Probability > 1 {
			return nil, bad("Result.Probability: %v is outside 0..1", r.Probability)
		}
		if strings.TrimSpace(r.Engine.Disclaimer) == "" {
			return nil, bad("Result.Engine.Disclaimer: empty (every result carries the disclaimer)")
		}
	case radgate.OutcomeNotApplicable, radgate.OutcomeFailed:
	default:
		return nil, bad("Result.Outcome: %q is not scored, not-applicable or failed", r.Outcome)
	}
	status, rev := resultStatus(r), r.EffectiveRevision()
	var obrStatus, obxStatus string
	switch status {
	case radgate.ResultFinal:
		if rev > 1 {
			return nil, bad("Result.Status: final with Revision %d: a revision after the first is amended (or retracted)", rev)
		}
		obrStatus, obxStatus = "F", "F"
		if r.Outcome != radgate.OutcomeScored {
			obrStatus = "X"
		}
	case radgate.ResultAmended:
		if rev < 2 {
			return nil, bad("Result.Status: amended with Revision %d: an amended result replaces Revision-1, so its Revision is 2 or more", r.Revision)
		}
		obrStatus, obxStatus = "C", "C"
	case radgate.ResultRetracted:
		obrStatus, obxStatus = "X", "W"
	default:
		return nil, bad("Result.Status: %q is not final, amended or retracted", r.Status)
	}

	m, err := New(opts.Delimiters)
	if err != nil {
		return nil, err
	}
	d := m.d
	now := opts.Time
	if now.IsZero() {
		now = time.Now()
	}
	scored := r.ScoredAt
	if scored.IsZero() {
		scored = now
	}
	h := Header{
		SendingApplication: opts.SendingApplication, SendingFacility: opts.SendingFacility,
		ReceivingApplication: opts.ReceivingApplication, ReceivingFacility: opts.ReceivingFacility,
		Time: now, Type: MessageType{Code: "ORU", Trigger: "R01", Structure: "ORU_R01"},
		ControlID: opts.ControlID, ProcessingID: opts.ProcessingID, Version: "2.5.1",
	}
	if h.SendingApplication.IsZero() {
		h.SendingApplication = HD{Namespace: "RADGATE"}
	}
	if h.ControlID == "" {
		h.ControlID = resultControlID(r.ID, revisionSuffix(rev, status))
	}
	if err := m.SetHeader(h); err != nil {
		return nil, err
	}

	// hdRaw writes an HD as a CX/EI component: namespace&universal id&type.
	hdRaw := func(a HD) string {
		parts := []string{d.Escape(a.Namespace), d.Escape(a.UniversalID), d.Escape(a.UniversalIDType)}
		return strings.TrimRight(strings.Join(parts, string(d.SubcomponentSep)), string(d.SubcomponentSep))
	}
	// eiRaw writes an identifier as an EI: value^namespace^universal id^type.
	eiRaw := func(id *radgate.Identifier) string {
		if id == nil || id.Value == "" {
			return ""
		}
		a := opts.Authorities.HD(id.System)
		return joinComponents(d, d.Escape(id.Value), d.Escape(a.Namespace), d.Escape(a.UniversalID), d.Escape(a.UniversalIDType))
	}
	cwe := func(code, text, system string) string {
		return joinComponents(d, d.Escape(code), d.Escape(text), d.Escape(system))
	}
	set := func(s *Segment, field int, raw string) {
		// The raw values below are built from escaped parts: they cannot
		// fail SetRaw's checks.
		if err == nil {
			err = s.SetRaw(fmt.Sprint(field), raw)
		}
	}

	pid := m.AddSegment("PID")
	set(pid, 1, "1")
	set(pid, 3, joinComponents(d, d.Escape(patient.Identifier.Value), "", "", hdRaw(opts.Authorities.HD(patient.Identifier.System))))
	set(pid, 5, opts.PatientName.xpn(d))

	var placer, filler string
	if sr := r.Order.ServiceRequest; sr != nil {
		placer = eiRaw(sr.Identifier)
	}
	filler = eiRaw(r.Order.Accession)
	if placer == "" && filler == "" {
		filler = eiRaw(&radgate.Identifier{Value: r.ID, System: IdentifierNamespace})
	}
	orc := m.AddSegment("ORC")
	set(orc, 1, "RE")
	set(orc, 2, placer)
	set(orc, 3, filler)
	if r.Outcome == radgate.OutcomeScored && status != radgate.ResultRetracted {
		set(orc, 5, "CM")
	}

	obr := m.AddSegment("OBR")
	set(obr, 1, "1")
	set(obr, 2, placer)
	set(obr, 3, filler)
	if len(r.Order.ProcedureCodes) > 0 {
		c := r.Order.ProcedureCodes[0]
		set(obr, 4, cwe(c.Code, c.Display, CodingSystemName(c.System)))
	} else {
		set(obr, 4, cwe(fhir.ReportCode.Code, fhir.ReportCode.Display, "LN"))
	}
	set(obr, 7, FormatTime(scored))
	if r.Order.Accession != nil {
		set(obr, 18, d.Escape(r.Order.Accession.Value))
	}
	set(obr, 20, d.Escape(r.ID))
	set(obr, 22, FormatTime(now))
	set(obr, 24, "RAD")

	engine := r.Engine.Name
	if engine == "" {
		engine = r.Engine.ID
	}
	label := engine
	if r.Engine.Version != "" {
		label += " " + r.Engine.Version
	}

	set(obr, 25, obrStatus)

	// Notes: revision, retraction, why not scored, the images.
	var notes []string
	switch status {
	case radgate.ResultAmended:
		notes = append(notes, fmt.Sprintf("AI result revision %d: it replaces revision %d.", rev, rev-1))
	case radgate.ResultRetracted:
		reason := strings.TrimSpace(r.RetractReason)
		if reason == "" {
			reason = "no reason given"
		}
		notes = append(notes, fmt.Sprintf("AI result retracted (revision %d): %s", rev, reason))
	}
	if r.Outcome != radgate.OutcomeScored {
		what := "not applicable"
		if r.Outcome == radgate.OutcomeFailed {
			what = "failed"
		}
		reason := strings.TrimSpace(r.Reason)
		if reason == "" {
			reason = "no reason given"
		}
		notes = append(notes, fmt.Sprintf("AI analysis by %s %s: %s", label, what, reason))
	}
	notes = append(notes, imageNotes(r.Images)...)
	for i, note := range notes {
		nte := m.AddSegment("NTE")
		set(nte, 1, fmt.Sprint(i+1))
		set(nte, 2, "L")
		set(nte, 3, d.EscapeFT(note))
	}
	if r.Outcome != radgate.OutcomeScored {
		if err != nil {
			return nil, err
		}
		if err := declareCharset(m, opts.Charset); err != nil {
			return nil, err
		}
		return m, nil
	}

	finding := r.Engine.Finding
	if finding.Code == "" {
		finding = radgate.Coding{System: fhir.DefaultFinding.System, Code: fhir.DefaultFinding.Code, Display: fhir.DefaultFinding.Display}
	}
	findingName := finding.Display
	if findingName == "" {
		findingName = finding.Code
	}
	engineID := r.Engine.ID
	if r.Engine.Version != "" {
		engineID += "@" + r.Engine.Version
	}
	equipment := joinComponents(d, d.Escape(engineID), d.Escape(IdentifierNamespace))
	n := 0
	obx := func(valueType, id, sub, value string) *Segment {
		n++
		s := m.AddSegment("OBX")
		set(s, 1, fmt.Sprint(n))
		set(s, 2, valueType)
		set(s, 3, id)
		set(s, 4, sub)
		set(s, 5, value)
		set(s, 11, obxStatus)
		set(s, 14, FormatTime(scored))
		set(s, 18, equipment)
		return s
	}
	conf := obx("NM", cwe(finding.Code, findingName+" (AI confidence)", CodingSystemName(finding.System)), "1",
		fhir.ConfidencePercent(r.Probability))
	set(conf, 6, cwe("%", "percent", "UCUM"))
	obx("CWE", cwe(ObsTier, "AI confidence tier", CodingSystemRadgate), "1", cwe(tier.Code, tier.Display, CodingSystemTier))

	conclusion := fmt.Sprintf("%s: AI confidence %s %% (tier %s), by %s.", findingName,
		fhir.ConfidencePercent(r.Probability), tier.Display, label)
	if r.Marked {
		conclusion += " The region of interest is marked on the AI heatmap."
	}
	obx("FT", cwe(ObsConclusion, "AI conclusion", CodingSystemRadgate), "", d.EscapeFT(conclusion))
	for _, c := range r.Caveats {
		obx("FT", cwe(ObsCaveat, "AI result caveat", CodingSystemRadgate), "", d.EscapeFT(c))
	}
	obx("FT", cwe(ObsDisclaimer, "Disclaimer", CodingSystemRadgate), "", d.EscapeFT(r.Engine.Disclaimer))
	obx("ST", cwe(ObsAlgorithmName, "AI algorithm", CodingSystemRadgate), "", d.Escape(oneLine(engine)))
	if r.Engine.Version != "" {
		obx("ST", cwe(ObsAlgorithmVersion, "AI algorithm version", CodingSystemRadgate), "", d.Escape(oneLine(r.Engine.Version)))
	}
	study := r.StudyInstanceUID
	if study == "" {
		study = r.Order.StudyInstanceUID
	}
	if study = radgate.StripUIDPrefix(study); study != "" {
		obx("ST", cwe(ObsStudyUID, "Study Instance UID", "DCM"), "", d.Escape(study))
	}
	if len(opts.PDF) > 0 {
		ed := joinComponents(d, "", "application", "pdf", "Base64", d.Escape(base64.StdEncoding.EncodeToString(opts.PDF)))
		obx("ED", cwe(ObsReportPDF, "AI report (PDF)", CodingSystemRadgate), "", ed)
	}
	if err != nil {
		return nil, err
	}
	if err := declareCharset(m, opts.Charset); err != nil {
		return nil, err
	}
	return m, nil
}

func joinComponents(d Delimiters, parts ...string) string {
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, string(d.ComponentSep))
}

// oneLine folds line breaks into spaces (ST holds no formatting).
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// resultControlID derives MSH-10 (at most 20 characters) from a result id
// and a revisionSuffix: the id itself when the two fit, else a hash of the
// id cut to leave room for the suffix.
func resultControlID(id, suffix string) string {
	if id == "" {
		return NewControlID() // no id to recognise a duplicate by
	}
	if len(id)+len(suffix) <= 20 && strings.Trim(id, "0123456789abcdefABCDEF-_.") == "" {
		return id + suffix
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:10])[:20-len(suffix)] + suffix
}

// resultStatus is r.Status, final when unset.
func resultStatus(r radgate.Result) radgate.ResultStatus {
	if r.Status == "" {
		return radgate.ResultFinal
	}
	return r.Status
}

// revisionSuffix tells a result's copies apart, in MSH-10 and in the
// outbox key: "" for the first (final) result, "-r<N>" for revision N
// (amended), "-r<N>x" for the retraction of revision N.
func revisionSuffix(revision int, status radgate.ResultStatus) string {
	switch {
	case status == radgate.ResultRetracted:
		return fmt.Sprintf("-r%dx", max(revision, 1))
	case revision <= 1 && (status == radgate.ResultFinal || status == ""):
		return ""
	}
	return fmt.Sprintf("-r%d", revision)
}

// imageNotes say which images a result considered: how many were scored,
// then each one that was not, by SOP Instance UID and view, with the
// reason (identifiers only).
func imageNotes(images []radgate.ImageNote) []string {
	if len(images) == 0 {
		return nil
	}
	word := "images"
	if len(images) == 1 {
		word = "image"
	}
	notes := []string{fmt.Sprintf("AI images: %d of %d %s scored.", radgate.ScoredImages(images), len(images), word)}
	for _, im := range images {
		if !im.Scored {
			notes = append(notes, oneLine("Not scored: "+im.Skipped()))
		}
	}
	return notes
}
