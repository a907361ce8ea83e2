package dicomweb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/radgate/radgate"
)

// FindStudy looks the study up with QIDO-RS and lists its series and
// instances.
//
// The Study Instance UID is used when q has one (a "urn:oid:" prefix is
// stripped); otherwise the accession number. Matching is exact: QIDO-RS
// treats '*' and '?' as wildcards and some servers (Orthanc) match without
// regard to case, so answers whose UID or accession number differ from the
// query are dropped. No match wraps radgate.ErrStudyNotFound; several studies
// with the accession number is ErrAmbiguousAccession (permanent: the order
// should name the study by UID).
//
// Requests, under Options.BaseURL. With a Study Instance UID, one:
//
//	GET /studies/{study}/instances?limit=…&includefield=00080080&includefield=0008103E&includefield=00180015&includefield=00185101&includefield=00540220
//
// (every instance with its series' attributes, grouped into series here),
// plus the metadata requests below. A server that refuses that query
// (400, 404, 405, 501), and an order known by accession number only, get
// the search in steps:
//
//	GET /studies?StudyInstanceUID=… (or AccessionNumber=…)
//	GET /studies/{study}/series?includefield=0008103E&includefield=00180015
//	GET /studies/{study}/series/{series}/instances?limit=…&includefield=00185101&includefield=00540220
//	GET /studies/{study}/series/{series}/metadata (only when needed, see below)
//
// Body Part Examined is asked for at series level (Orthanc 1.10 with the
// DICOMweb plugin 1.7 returns it there only when asked with includefield).
// Where a server leaves it out of a series, the instance query asks for it
// too and the first instance's value is used.
//
// Each instance carries its view: View Position (0018,5101), or, when that
// is empty, the first item of View Code Sequence (0054,0220) as a
// radgate.Coding (SCT, DCM and LN schemes as their FHIR system URIs).
// Where the QIDO-RS answer holds no View Code Sequence for an instance
// without View Position (Orthanc 1.10 never returns sequences there), the
// series' WADO-RS metadata is read once — for projection modalities only
// (CR, DX, MG, IO, PX, RG), so a CT series costs no extra request.
//
// Series come sorted by Series Number, instances by Instance Number (then by
// UID). A series with no instance is left out; a study with none wraps
// radgate.ErrStudyNotFound (it is still arriving, or was deleted meanwhile).
func (c *Client) FindStudy(ctx context.Context, q radgate.StudyQuery) (*radgate.Study, error) {
	uid := radgate.StripUIDPrefix(q.StudyInstanceUID)
	acc := strings.TrimSpace(q.AccessionNumber)

	// Institution Name is a study-level attribute routes match on; servers
	// return it only when asked.
	query := url.Values{"includefield": {tagInstitutionName}}
	var what string
	switch {
	case uid != "":
		if err := checkUID("Study Instance UID", uid); err != nil {
			return nil, fmt.Errorf("dicomweb: finding a study: %w: %w", ErrInvalidQuery, err)
		}
		query.Set("StudyInstanceUID", uid)
		what = "Study Instance UID " + uid
	case acc != "":
		query.Set("AccessionNumber", acc)
		what = "accession number " + strconv.Quote(acc)
	default:
		return nil, fmt.Errorf("dicomweb: finding a study: %w: neither a Study Instance UID nor an accession number", ErrInvalidQuery)
	}
	if uid != "" {
		study, err := c.findByInstances(ctx, uid, what)
		var herr *HTTPError
		if err == nil || !errors.As(err, &herr) || !slices.Contains(instanceQueryRefused, herr.StatusCode) {
			return study, err
		}
		// This server does not answer a study's instances at once: the
		// three-step search below.
	}

	studies, err := c.qido(ctx, "/studies", c.endpoint(query, "studies"))
	if err != nil {
		return nil, err
	}
	var matches []dataset
	for _, s := range studies {
		if uid != "" && s.str(tagStudyInstanceUID) == uid ||
			uid == "" && s.str(tagAccessionNumber) == acc && s.str(tagStudyInstanceUID) != "" {
			matches = append(matches, s)
		}
	}
	if uid == "" {
		matches = dedupeStudies(matches)
	}
	switch {
	case len(matches) == 0:
		return nil, fmt.Errorf("dicomweb: finding the study with %s: %w", what, radgate.ErrStudyNotFound)
	case len(matches) > 1:
		return nil, fmt.Errorf("dicomweb: finding the study with %s: %w (%d studies); order it by Study Instance UID", what, ErrAmbiguousAccession, len(matches))
	}
	study := &radgate.Study{
		StudyInstanceUID: matches[0].str(tagStudyInstanceUID),
		AccessionNumber:  matches[0].str(tagAccessionNumber),
		InstitutionName:  matches[0].str(tagInstitutionName),
	}
	if err := checkUID("Study Instance UID", study.StudyInstanceUID); err != nil {
		return nil, fmt.Errorf("dicomweb: QIDO-RS answer for %s: %w: %w", what, ErrMalformedResponse, err)
	}

	seriesQuery := url.Values{"includefield": {tagSeriesDescription, tagBodyPartExamined}}
	seriesList, err := c.qido(ctx, "series", c.endpoint(seriesQuery, "studies", study.StudyInstanceUID, "series"))
	if err != nil {
		return nil, err
	}

	type seriesRow struct {
		series radgate.Series
		number int
	}
	var rows []seriesRow
	seen := map[string]bool{}
	total := 0
	for _, s := range seriesList {
		suid := s.str(tagSeriesInstanceUID)
		if err := checkUID("Series Instance UID", suid); err != nil {
			return nil, fmt.Errorf("dicomweb: QIDO-RS series of study %s: %w: %w", study.StudyInstanceUID, ErrMalformedResponse, err)
		}
		if seen[suid] {
			continue
		}
		seen[suid] = true
		se := radgate.Series{
			SeriesInstanceUID: suid,
			Modality:          s.str(tagModality),
			BodyPartExamined:  s.str(tagBodyPartExamined),
		}
		insts, bodyPart, err := c.listInstances(ctx, study.StudyInstanceUID, suid, se.Modality, se.BodyPartExamined == "", c.maxInstances-total)
		if err != nil {
			return nil, err
		}
		if len(insts) == 0 {
			continue
		}
		total += len(insts)
		se.Instances = insts
		if se.BodyPartExamined == "" {
			se.BodyPartExamined = bodyPart
		}
		n, _ := s.integer(tagSeriesNumber)
		rows = append(rows, seriesRow{series: se, number: n})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("dicomweb: finding the study with %s: the archive lists no instance: %w", what, radgate.ErrStudyNotFound)
	}
	slices.SortStableFunc(rows, func(a, b seriesRow) int {
		return cmp.Or(cmp.Compare(a.number, b.number), strings.Compare(a.series.SeriesInstanceUID, b.series.SeriesInstanceUID))
	})
	for _, r := range rows {
		study.Series = append(study.Series, r.series)
	}
	return study, nil
}

// instanceQueryRefused are the answers to GET /studies/{study}/instances
// that mean the server does not offer that query (PS3.18 makes it
// optional): FindStudy then searches study, series and instances in turn.
var instanceQueryRefused = []int{http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented}

// findByInstances finds the study with Study Instance UID uid in one
// QIDO-RS request: every instance of the study, with the series attributes
// (Modality, Series Instance UID, Series Number, and on request Series
// Description and Body Part Examined) and the study's Institution Name and
// Accession Number each instance answer carries. An empty answer wraps
// radgate.ErrStudyNotFound; an answer naming another study is dropped.
func (c *Client) findByInstances(ctx context.Context, uid, what string) (*radgate.Study, error) {
	query := url.Values{"limit": {strconv.Itoa(c.maxInstances + 1)}, "includefield": {
		tagInstitutionName, tagSeriesDescription, tagBodyPartExamined, tagViewPosition, tagViewCodeSequence}}
	list, err := c.qido(ctx, "instances", c.endpoint(query, "studies", uid, "instances"))
	if err != nil {
		return nil, err
	}
	bySeries := map[string][]dataset{}
	var order []string
	for _, d := range list {
		if s := d.str(tagStudyInstanceUID); s != "" && s != uid {
			continue // a server matching without regard to case
		}
		suid := d.str(tagSeriesInstanceUID)
		if err := checkUID("Series Instance UID", suid); err != nil {
			return nil, fmt.Errorf("dicomweb: QIDO-RS instances of study %s: %w: %w", uid, ErrMalformedResponse, err)
		}
		if _, ok := bySeries[suid]; !ok {
			order = append(order, suid)
		}
		bySeries[suid] = append(bySeries[suid], d)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("dicomweb: finding the study with %s: %w", what, radgate.ErrStudyNotFound)
	}
	total := 0
	for _, list := range bySeries {
		total += countSOPs(list)
	}
	if total > c.maxInstances {
		return nil, fmt.Errorf("dicomweb: listing the instances of study %s: %w (%d)", uid, ErrTooManyInstances, c.maxInstances)
	}
	var all []dataset
	for _, suid := range order {
		all = append(all, bySeries[suid]...)
	}
	study := &radgate.Study{StudyInstanceUID: uid, AccessionNumber: firstStr(all, tagAccessionNumber), InstitutionName: firstStr(all, tagInstitutionName)}
	type seriesRow struct {
		series radgate.Series
		number int
	}
	rows := make([]seriesRow, 0, len(order))
	for _, suid := range order {
		list := bySeries[suid]
		se := radgate.Series{SeriesInstanceUID: suid, Modality: firstStr(list, tagModality), BodyPartExamined: firstStr(list, tagBodyPartExamined)}
		if se.Instances, err = c.seriesInstances(ctx, uid, suid, se.Modality, list); err != nil {
			return nil, err
		}
		n, _ := list[0].integer(tagSeriesNumber)
		rows = append(rows, seriesRow{series: se, number: n})
	}
	slices.SortStableFunc(rows, func(a, b seriesRow) int {
		return cmp.Or(cmp.Compare(a.number, b.number), strings.Compare(a.series.SeriesInstanceUID, b.series.SeriesInstanceUID))
	})
	for _, r := range rows {
		study.Series = append(study.Series, r.series)
	}
	return study, nil
}

// listInstances lists the instances of one series, at most limit of them
// (ErrTooManyInstances beyond), with their views (see viewsFromMetadata).
// With wantBodyPart it also asks for Body Part Examined and returns the
// first non-empty value.
func (c *Client) listInstances(ctx context.Context, studyUID, seriesUID, modality string, wantBodyPart bool, limit int) ([]radgate.Instance, string, error) {
	if limit <= 0 {
		return nil, "", fmt.Errorf("dicomweb: listing the instances of study %s: %w (%d)", studyUID, ErrTooManyInstances, c.maxInstances)
	}
	query := url.Values{"limit": {strconv.Itoa(limit + 1)}, "includefield": {tagViewPosition, tagViewCodeSequence}}
	if wantBodyPart {
		query.Add("includefield", tagBodyPartExamined)
	}
	list, err := c.qido(ctx, "instances", c.endpoint(query, "studies", studyUID, "series", seriesUID, "instances"))
	if err != nil {
		return nil, "", err
	}
	if n := countSOPs(list); n > limit {
		return nil, "", fmt.Errorf("dicomweb: listing the instances of study %s: %w (%d)", studyUID, ErrTooManyInstances, c.maxInstances)
	}
	bodyPart := ""
	if wantBodyPart {
		bodyPart = firstStr(list, tagBodyPartExamined)
	}
	insts, err := c.seriesInstances(ctx, studyUID, seriesUID, modality, list)
	return insts, bodyPart, err
}

// countSOPs is the number of distinct SOP Instance UIDs in list.
func countSOPs(list []dataset) int {
	seen := map[string]bool{}
	for _, d := range list {
		seen[d.str(tagSOPInstanceUID)] = true
	}
	return len(seen)
}

// firstStr is the first non-empty value of tag in list.
func firstStr(list []dataset, tag string) string {
	for _, d := range list {
		if v := d.str(tag); v != "" {
			return v
		}
	}
	return ""
}

// seriesInstances turns one series' instance answers into its instances,
// each SOP Instance UID once, with their views (see viewsFromMetadata),
// sorted by Instance Number, then by UID.
func (c *Client) seriesInstances(ctx context.Context, studyUID, seriesUID, modality string, list []dataset) ([]radgate.Instance, error) {
	type row struct {
		inst   radgate.Instance
		number int
	}
	var rows []row
	seen := map[string]bool{}
	unsettled := 0 // instances whose view the answer leaves open
	for _, d := range list {
		sop := d.str(tagSOPInstanceUID)
		if err := checkUID("SOP Instance UID", sop); err != nil {
			return nil, fmt.Errorf("dicomweb: QIDO-RS instances of series %s: %w: %w", seriesUID, ErrMalformedResponse, err)
		}
		if seen[sop] {
			continue
		}
		seen[sop] = true
		n, _ := d.integer(tagInstanceNumber)
		inst := radgate.Instance{SOPInstanceUID: sop, SOPClassUID: d.str(tagSOPClassUID)}
		var settled bool
		inst.ViewPosition, inst.ViewCode, settled = d.view()
		if !settled {
			unsettled++
		}
		rows = append(rows, row{inst: inst, number: n})
	}
	if unsettled > 0 && viewModalities[modality] {
		codes, err := c.viewsFromMetadata(ctx, studyUID, seriesUID)
		if err != nil {
			return nil, err
		}
		for i := range rows {
			if r := &rows[i].inst; r.ViewPosition == "" && r.ViewCode == nil {
				r.ViewCode = codes[r.SOPInstanceUID]
			}
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.number, b.number), strings.Compare(a.inst.SOPInstanceUID, b.inst.SOPInstanceUID))
	})
	out := make([]radgate.Instance, len(rows))
	for i, r := range rows {
		out[i] = r.inst
	}
	return out, nil
}

// viewModalities are the modalities of projection images, whose view
// (PA, AP, lateral, …) an engine may select on: only their series are
// worth a metadata request for View Code Sequence.
var viewModalities = map[string]bool{"CR": true, "DX": true, "MG": true, "IO": true, "PX": true, "RG": true}

// viewsFromMetadata reads View Code Sequence for the instances of a series
// from its WADO-RS metadata,
//
//	GET /studies/{study}/series/{series}/metadata
//
// for servers whose QIDO-RS answers leave sequences out even when asked
// with includefield (Orthanc 1.10 with the DICOMweb plugin 1.7 returns
// View Position but never View Code Sequence). FindStudy asks only for a
// series of a projection modality (viewModalities) where an instance has
// no View Position. It returns the first item's code by SOP Instance UID
// (instances without one are absent); a 404 gives none, any other failure
// is FindStudy's error (transient ones worth retrying: an image whose view
// is not known may be skipped by an engine that selects on views).
func (c *Client) viewsFromMetadata(ctx context.Context, studyUID, seriesUID string) (map[string]*radgate.Coding, error) {
	list, err := c.qido(ctx, "metadata", c.endpoint(nil, "studies", studyUID, "series", seriesUID, "metadata"))
	var herr *HTTPError
	switch {
	case asHTTPStatus(err, &herr, http.StatusNotFound):
		// The series went away since it was listed (or the server keeps
		// no metadata): the instances keep what QIDO-RS said.
		return nil, nil
	case err != nil:
		return nil, err
	}
	out := map[string]*radgate.Coding{}
	for _, d := range list {
		if _, code, _ := d.view(); code != nil {
			out[d.str(tagSOPInstanceUID)] = code
		}
	}
	return out, nil
}

// qido runs one QIDO-RS search and decodes the DICOM JSON array. level is
// "/studies" for the root search (where 404 means a wrong base URL) or a
// level under a study (where 404 means the study is absent).
func (c *Client) qido(ctx context.Context, level string, u *url.URL) ([]dataset, error) {
	r := &request{op: "QIDO-RS", method: http.MethodGet, url: u, header: http.Header{"Accept": {"application/dicom+json"}}}
	var out []dataset
	err := c.do(ctx, r, nil, func(resp *http.Response) error {
		if resp.StatusCode == http.StatusNoContent {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBytes+1))
		if err != nil {
			return bodyReadError(r, "the DICOM JSON answer", err)
		}
		if len(b) > maxJSONBytes {
			return fmt.Errorf("dicomweb: %s: %w: the answer exceeds %d bytes", r.where(), ErrMalformedResponse, maxJSONBytes)
		}
		out, err = parseDatasets(b)
		if err != nil {
			return fmt.Errorf("dicomweb: %s: %w: not a DICOM JSON array: %v", r.where(), ErrMalformedResponse, err)
		}
		return nil
	})
	if err != nil {
		var herr *HTTPError
		if level != "/studies" && asHTTPStatus(err, &herr, http.StatusNotFound) {
			return nil, fmt.Errorf("%w: %w", err, radgate.ErrStudyNotFound)
		}
		return nil, err
	}
	return out, nil
}

// asHTTPStatus reports whether err holds an *HTTPError with the given status.
func asHTTPStatus(err error, target **HTTPError, code int) bool {
	return errors.As(err, target) && (*target).StatusCode == code
}

// dedupeStudies keeps one answer per Study Instance UID.
func dedupeStudies(in []dataset) []dataset {
	seen := map[string]bool{}
	var out []dataset
	for _, d := range in {
		uid := d.str(tagStudyInstanceUID)
		if !seen[uid] {
			seen[uid] = true
			out = append(out, d)
		}
	}
	return out
}

// checkUID accepts a DICOM UID: digits and dots, components not empty, at
// most 64 characters. Anything else is refused before it reaches a URL path.
func checkUID(what, uid string) error {
	if uid == "" {
		return fmt.Errorf("%s is empty", what)
	}
	ok := len(uid) <= 64 && uid[0] != '.' && uid[len(uid)-1] != '.' && !strings.Contains(uid, "..")
	for i := 0; ok && i < len(uid); i++ {
		ok = uid[i] == '.' || uid[i] >= '0' && uid[i] <= '9'
	}
	if !ok {
		return fmt.Errorf("%s %q is not a DICOM UID (digits and dots, at most 64)", what, uid)
	}
	return nil
}
