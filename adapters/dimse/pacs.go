package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/radgate/radgate"
)

// Retrieval methods of a PACS.
const (
	RetrieveMove = "c-move"
	RetrieveGet  = "c-get"
)

// ErrAmbiguousAccession: a C-FIND by accession number matched several
// studies. FindStudy does not guess which one the order means. Permanent.
var ErrAmbiguousAccession = errors.New("the accession number matches several studies")

// PACS is a radgate.StudySource over a DIMSE-only PACS (pacs.dimse):
// FindStudy asks with C-FIND at study, series and image level;
// RetrieveInstance retrieves the instance's whole study once (C-MOVE to
// radgate's own Storage SCP, whose Intake keeps what arrives in the
// Archive, or C-GET on the same association, kept in the Archive here),
// then reads the instance from the Archive. Concurrent retrievals of one
// study are one. Wrap it with Archive.WithPACS so that what is already in
// the Archive is read there first.
type PACS struct {
	// Dialer calls the PACS: CallingAE (radgate), CalledAE (the PACS),
	// Timeout, MaxPDULength, TLS.
	Dialer Dialer
	// Addr is the PACS's host:port.
	Addr string
	// Retrieve is RetrieveMove (default) or RetrieveGet.
	Retrieve string
	// MoveDestination is the AE title of radgate's own Storage SCP, the
	// C-MOVE destination (the PACS must know it with its host and port).
	MoveDestination string
	// Archive keeps what is retrieved.
	Archive *Archive
	// MaxInstanceBytes bounds one instance received by C-GET (0: none).
	MaxInstanceBytes int64
	// Logger gets a line per retrieval; identifiers only.
	Logger *slog.Logger

	mu       sync.Mutex
	inflight map[string]*retrieval
}

var _ radgate.StudySource = (*PACS)(nil)

// retrieval is one study's retrieval in progress; done closes when err is
// set.
type retrieval struct {
	done chan struct{}
	res  MoveResult
	err  error
}

func (p *PACS) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

// dial opens an association with the Query/Retrieve contexts (and for
// C-GET the storage contexts with the SCP role).
func (p *PACS) dial(ctx context.Context, get bool) (*Association, error) {
	d := p.Dialer
	d.Logger = p.log()
	var classes []string
	if get {
		classes = StorageSOPClasses
		d.RoleSelections = GetRoles(classes)
	}
	as, err := d.Dial(ctx, p.Addr, QueryRetrieveContexts(classes))
	if err != nil {
		return nil, classify(err)
	}
	return as, nil
}

// classify marks what a later try may not meet as radgate.Transient: the
// network (refused, timed out, reset, aborted), a transient rejection, an
// out-of-resources status.
func classify(err error) error {
	var rj *RejectError
	var se *StatusError
	var ab *AbortedError
	var ne net.Error
	var oe *net.OpError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rj):
		if rj.Reject.Result == 2 { // rejected-transient
			return radgate.Transient(err)
		}
		return err
	case errors.As(err, &se):
		if se.Transient() {
			return radgate.Transient(err)
		}
		return err
	case errors.As(err, &ab), errors.As(err, &ne), errors.As(err, &oe),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, ErrDataSetCut), errors.Is(err, context.DeadlineExceeded):
		return radgate.Transient(err)
	}
	return err
}

// find runs one C-FIND on as.
func (p *PACS) find(ctx context.Context, as *Association, level string, keys map[Tag]string) ([]*Dataset, error) {
	res, err := as.Find(ctx, StudyRootFind, NewIdentifier(level, keys))
	if err != nil {
		return nil, fmt.Errorf("C-FIND at %s level in %s: %w", level, p.Dialer.CalledAE, classify(err))
	}
	return res, nil
}

// FindStudy implements radgate.StudySource: C-FIND at study level by Study
// Instance UID, else Accession Number (no match wraps
// radgate.ErrStudyNotFound; several by accession number is
// ErrAmbiguousAccession), then the study's series (Modality, Body Part
// Examined) and each series' instances (SOP Instance and Class UIDs, View
// Position).
func (p *PACS) FindStudy(ctx context.Context, q radgate.StudyQuery) (*radgate.Study, error) {
	uid := radgate.StripUIDPrefix(q.StudyInstanceUID)
	acsn := strings.TrimSpace(q.AccessionNumber)
	keys := map[Tag]string{TagStudyInstanceUID: uid, TagAccessionNumber: "", TagInstitutionName: "", TagSpecificCharacterSet: ""}
	what := "Study Instance UID " + uid
	switch {
	case uid != "":
		if err := radgate.CheckUID("Study Instance UID", uid); err != nil {
			return nil, err
		}
	case acsn != "":
		if strings.ContainsAny(acsn, `*?\`) {
			return nil, fmt.Errorf("dimse: accession number %q has a wildcard or backslash", acsn)
		}
		keys[TagAccessionNumber] = acsn
		what = fmt.Sprintf("accession number %q", acsn)
	default:
		return nil, errors.New("dimse: FindStudy needs a Study Instance UID or an accession number")
	}
	as, err := p.dial(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("dimse: finding the study with %s: %w", what, err)
	}
	st, err := p.findStudy(ctx, as, keys, what)
	if err != nil {
		_ = as.Abort()
		return nil, err
	}
	_ = as.Release(ctx)
	return st, nil
}

func (p *PACS) findStudy(ctx context.Context, as *Association, keys map[Tag]string, what string) (*radgate.Study, error) {
	studies, err := p.find(ctx, as, LevelStudy, keys)
	if err != nil {
		return nil, fmt.Errorf("dimse: finding the study with %s: %w", what, err)
	}
	switch {
	case len(studies) == 0:
		return nil, fmt.Errorf("dimse: %w: no study with %s in %s", radgate.ErrStudyNotFound, what, p.Dialer.CalledAE)
	case len(studies) > 1:
		return nil, fmt.Errorf("dimse: finding the study with %s: %w (%d studies); order it by Study Instance UID", what, ErrAmbiguousAccession, len(studies))
	}
	s := studies[0]
	st := &radgate.Study{StudyInstanceUID: s.String(TagStudyInstanceUID), AccessionNumber: s.String(TagAccessionNumber),
		InstitutionName: s.Text(TagInstitutionName)}
	if err := radgate.CheckUID("Study Instance UID", st.StudyInstanceUID); err != nil {
		return nil, fmt.Errorf("dimse: C-FIND answer for %s: %w", what, err)
	}
	series, err := p.find(ctx, as, LevelSeries, map[Tag]string{TagStudyInstanceUID: st.StudyInstanceUID,
		TagSeriesInstanceUID: "", TagModality: "", TagBodyPartExamined: ""})
	if err != nil {
		return nil, fmt.Errorf("dimse: series of study %s: %w", st.StudyInstanceUID, err)
	}
	for _, se := range series {
		sr := radgate.Series{SeriesInstanceUID: se.String(TagSeriesInstanceUID), Modality: se.String(TagModality),
			BodyPartExamined: se.String(TagBodyPartExamined)}
		if err := radgate.CheckUID("Series Instance UID", sr.SeriesInstanceUID); err != nil {
			return nil, fmt.Errorf("dimse: C-FIND answer for the series of study %s: %w", st.StudyInstanceUID, err)
		}
		images, err := p.find(ctx, as, LevelImage, map[Tag]string{TagStudyInstanceUID: st.StudyInstanceUID,
			TagSeriesInstanceUID: sr.SeriesInstanceUID, TagSOPInstanceUID: "", TagSOPClassUID: "", TagViewPosition: "", TagInstitutionName: "", TagSpecificCharacterSet: ""})
		if err != nil {
			return nil, fmt.Errorf("dimse: instances of series %s: %w", sr.SeriesInstanceUID, err)
		}
		for _, im := range images {
			in := radgate.Instance{SOPInstanceUID: im.String(TagSOPInstanceUID), SOPClassUID: im.String(TagSOPClassUID),
				ViewPosition: im.String(TagViewPosition)}
			if err := radgate.CheckUID("SOP Instance UID", in.SOPInstanceUID); err != nil {
				return nil, fmt.Errorf("dimse: C-FIND answer for the instances of series %s: %w", sr.SeriesInstanceUID, err)
			}
			if st.InstitutionName == "" {
				st.InstitutionName = im.Text(TagInstitutionName)
			}
			sr.Instances = append(sr.Instances, in)
		}
		st.Series = append(st.Series, sr)
	}
	return st, nil
}

// RetrieveInstance implements radgate.StudySource: the instance from the
// Archive, after retrieving its whole study from the PACS when it is not
// there yet (once, however many ask at the same time).
func (p *PACS) RetrieveInstance(ctx context.Context, studyUID, seriesUID, sopInstanceUID string) ([]byte, error) {
	b, err := p.Archive.RetrieveInstance(ctx, studyUID, seriesUID, sopInstanceUID)
	if err == nil || !errors.Is(err, radgate.ErrStudyNotFound) {
		return b, err
	}
	if err := radgate.CheckUID("Study Instance UID", studyUID); err != nil {
		return nil, err
	}
	res, err := p.retrieveStudy(ctx, studyUID)
	if err != nil {
		return nil, err
	}
	b, err = p.Archive.RetrieveInstance(ctx, studyUID, seriesUID, sopInstanceUID)
	if errors.Is(err, radgate.ErrStudyNotFound) {
		err = fmt.Errorf("dimse: instance %s not among what %s of study %s brought (%d completed, %d failed, %d warnings): %w",
			sopInstanceUID, p.method(), studyUID, res.Completed, res.Failed, res.Warning, err)
		if res.Failed > 0 {
			err = radgate.Transient(err)
		}
	}
	return b, err
}

func (p *PACS) method() string {
	if p.Retrieve == RetrieveGet {
		return "C-GET"
	}
	return "C-MOVE"
}

// retrieveStudy retrieves a study into the Archive, or waits for the
// retrieval of it already under way. The retrieval itself does not end
// with the ctx of the caller that started it (others may wait on it); each
// caller stops waiting when its own ctx ends.
func (p *PACS) retrieveStudy(ctx context.Context, studyUID string) (MoveResult, error) {
	p.mu.Lock()
	if p.inflight == nil {
		p.inflight = map[string]*retrieval{}
	}
	r, ok := p.inflight[studyUID]
	if !ok {
		r = &retrieval{done: make(chan struct{})}
		p.inflight[studyUID] = r
		go func() {
			r.res, r.err = p.retrieve(context.WithoutCancel(ctx), studyUID)
			p.mu.Lock()
			delete(p.inflight, studyUID)
			p.mu.Unlock()
			close(r.done)
		}()
	}
	p.mu.Unlock()
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		return MoveResult{}, ctx.Err()
	}
}

// retrieve runs one C-MOVE or C-GET of a study.
func (p *PACS) retrieve(ctx context.Context, studyUID string) (MoveResult, error) {
	get := p.Retrieve == RetrieveGet
	t0 := time.Now()
	as, err := p.dial(ctx, get)
	if err != nil {
		return MoveResult{}, fmt.Errorf("dimse: retrieving study %s: %w", studyUID, err)
	}
	id := NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: studyUID})
	var res MoveResult
	if get {
		res, err = as.Get(ctx, id, &archiveHandler{archive: p.Archive, maxBytes: p.MaxInstanceBytes, log: p.log()})
	} else {
		res, err = as.Move(ctx, p.MoveDestination, id)
	}
	if err != nil {
		_ = as.Abort()
		return res, fmt.Errorf("dimse: retrieving study %s from %s: %w", studyUID, p.Dialer.CalledAE, classify(err))
	}
	_ = as.Release(ctx)
	p.log().Info("dimse: study retrieved", "study", studyUID, "method", p.method(), "pacs", p.Dialer.CalledAE,
		"completed", res.Completed, "failed", res.Failed, "warning", res.Warning, "ms", time.Since(t0).Milliseconds())
	return res, nil
}

// archiveHandler keeps the C-STOREs of a C-GET in the Archive (no order:
// radgate asked for them).
type archiveHandler struct {
	archive  *Archive
	maxBytes int64
	log      *slog.Logger
}

func (h *archiveHandler) Store(ctx context.Context, rq *StoreRequest, data io.Reader) Status {
	_, st := keepInstance(ctx, h.archive, h.maxBytes, time.Now(), true, h.log, rq, data)
	return st
}

// ProbePACS checks that a PACS answers d: an association with the Query/
// Retrieve contexts in which Study Root C-FIND is accepted, and a C-ECHO
// when Verification is too.
func ProbePACS(ctx context.Context, d Dialer, addr string) error {
	contexts := append(QueryRetrieveContexts(nil), PresentationContext{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}})
	as, err := d.Dial(ctx, addr, contexts)
	if err != nil {
		return err
	}
	if len(as.Accepted(StudyRootFind)) == 0 {
		_ = as.Abort()
		return fmt.Errorf("dimse: %s does not accept Study Root C-FIND from %s", d.CalledAE, d.CallingAE)
	}
	if len(as.Accepted(VerificationSOPClass)) > 0 {
		if err := as.Echo(ctx); err != nil {
			_ = as.Abort()
			return err
		}
	}
	return as.Release(ctx)
}
