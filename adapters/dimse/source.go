package dimse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
)

// JetStream names of the image store. An instance is kept in one of two
// forms: one message of StreamImages when it fits NATS's max_payload (most
// do: one publish, acknowledged once stored), else an object of
// BucketImages with its record in BucketStudies.
const (
	// StreamImages holds each instance that fits one message: the Part 10
	// file as the payload, its InstanceRecord (JSON) in the HeaderInstance
	// header, on SubjectImages + "<study uid>.<sop instance uid>" (the last
	// stored replaces an earlier one).
	StreamImages  = "RADGATE_IMAGES"
	SubjectImages = "radgate.images."
	// HeaderInstance carries a StreamImages message's InstanceRecord.
	HeaderInstance = "Radgate-Instance"
	// BucketImages is the object store of the instances too large for one
	// message: one Part 10 file per object, named "<study uid>/<sop
	// instance uid>".
	BucketImages = "radgate_images"
	// BucketStudies indexes BucketImages: "i.<study>.<sop>" holds an
	// InstanceRecord, "a.<digest of the accession number>" the study UID
	// (of instances in either form).
	BucketStudies = "radgate_studies"
)

// ArchiveLimits bound the image store (radgate.yaml retention.images).
type ArchiveLimits struct {
	MaxAge   time.Duration
	MaxBytes int64
}

// InstanceRecord is what the index keeps of one stored instance: the
// identifiers and the few attributes routing and instance selection read.
// Never patient data.
type InstanceRecord struct {
	StudyInstanceUID  string `json:"study"`
	SeriesInstanceUID string `json:"series"`
	SOPInstanceUID    string `json:"sop"`
	SOPClassUID       string `json:"sop_class"`
	TransferSyntaxUID string `json:"ts"`
	Modality          string `json:"modality,omitempty"`
	BodyPartExamined  string `json:"body_part,omitempty"`
	ViewPosition      string `json:"view,omitempty"`
	AccessionNumber   string `json:"accession,omitempty"`
	InstitutionName   string `json:"institution,omitempty"`
	CallingAE         string `json:"calling_ae,omitempty"`
	// Retrieved: radgate asked a PACS for it (C-MOVE, C-GET); it was not
	// pushed.
	Retrieved  bool      `json:"retrieved,omitempty"`
	Bytes      int64     `json:"bytes"`
	ReceivedAt time.Time `json:"received_at"`
}

// Archive is radgate's store of the instances pushed to it (C-STORE to its
// Storage SCP, or the C-MOVEs it asks of a DIMSE-only PACS), and a
// radgate.StudySource over them. An instance is durable once Put returns:
// one message with its record, or (too large for one) the object first,
// then its index entry, so the index never names an object that is not
// there.
type Archive struct {
	js       jetstream.JetStream
	stream   jetstream.Stream
	obj      jetstream.ObjectStore
	kv       jetstream.KeyValue
	maxBytes int64
	// maxMessage, when positive, replaces the connection's max_payload as
	// the largest message an instance is stored in (tests).
	maxMessage int64

	mu     sync.Mutex
	acsn   map[string]string // accession number → study UID, as indexed by this process
	size   int64             // the store's size as last read (used), at sizeAt
	sizeAt time.Time
}

var _ radgate.StudySource = (*Archive)(nil)

// EnsureArchive creates (or updates to l) the image store and its index.
// The stream and the object store are each bounded by l.MaxBytes and refuse
// new instances when full; Room counts them together.
func EnsureArchive(ctx context.Context, js jetstream.JetStream, l ArchiveLimits) (*Archive, error) {
	maxBytes := l.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	var maxMsgs int64 = -1
	if maxBytes < 0 {
		maxMsgs = blockSizeHint
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamImages, Subjects: []string{SubjectImages + ">"},
		Description: "instances pushed to radgate (DICOM C-STORE) that fit one message: Part 10, their index record in a header",
		Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxMsgsPerSubject: 1,
		MaxAge: l.MaxAge, MaxBytes: maxBytes, MaxMsgs: maxMsgs, Discard: jetstream.DiscardNew, AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", StreamImages, err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: BucketImages, Description: "instances pushed to radgate (DICOM C-STORE), Part 10, by study/instance",
		Storage: jetstream.FileStorage, TTL: l.MaxAge, MaxBytes: maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("creating object store %s: %w", BucketImages, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketStudies, Description: "index of radgate_images: instances by study, studies by accession number",
		Storage: jetstream.FileStorage, History: 1, TTL: l.MaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", BucketStudies, err)
	}
	return &Archive{js: js, stream: stream, obj: obj, kv: kv, maxBytes: l.MaxBytes, acsn: map[string]string{}}, nil
}

// blockSizeHint is StreamImages's MaxMsgs when retention.images sets no
// max_bytes: a bound no store reaches (a billion instances), there so that
// nats-server sizes the stream's file blocks from it, at its largest (8
// MiB), and not at the 4 MiB it gives a stream with MaxMsgsPerSubject and
// no other limit. Measured: a 1 MiB instance per block file of 4 MiB opened
// a new file every three instances.
const blockSizeHint = 1 << 30

// ErrStorageLow is returned by Room when the image store has less room
// left than asked for.
var ErrStorageLow = errors.New("image store low on space")

// Room returns an error wrapping ErrStorageLow when the image store has
// less than need bytes left under its max_bytes (none: it has room).
func (a *Archive) Room(ctx context.Context, need int64) error {
	if a.maxBytes <= 0 {
		return nil
	}
	used, err := a.used(ctx)
	if err != nil {
		return err
	}
	if left := a.maxBytes - used; left < need {
		return fmt.Errorf("%w: %d bytes left of retention.images.max_bytes %d, under dimse.min_free_bytes %d", ErrStorageLow, max(left, 0), a.maxBytes, need)
	}
	return nil
}

// sizeFresh is how long a reading of the image store's size is reused: an
// association set-up need not ask JetStream each time.
const sizeFresh = time.Second

// used is the image store's size (stream and object store), read at most
// once a sizeFresh.
func (a *Archive) used(ctx context.Context) (int64, error) {
	a.mu.Lock()
	if time.Since(a.sizeAt) < sizeFresh {
		defer a.mu.Unlock()
		return a.size, nil
	}
	a.mu.Unlock()
	st, err := a.obj.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the image store's size: %w", err)
	}
	si, err := a.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the image store's size: %w", err)
	}
	size := int64(st.Size()) + int64(si.State.Bytes)
	a.mu.Lock()
	a.size, a.sizeAt = size, time.Now()
	a.mu.Unlock()
	return size, nil
}

// RecordOf reads the index record of a Part 10 file: its header only.
func RecordOf(part10 []byte) (InstanceRecord, error) {
	m, err := inference.ReadHeader(part10)
	if err != nil {
		return InstanceRecord{}, err
	}
	r := InstanceRecord{
		StudyInstanceUID: m.StudyInstanceUID, SeriesInstanceUID: m.SeriesInstanceUID, SOPInstanceUID: m.SOPInstanceUID,
		SOPClassUID: m.SOPClassUID, TransferSyntaxUID: m.TransferSyntaxUID, Modality: m.Modality,
		BodyPartExamined: m.BodyPartExamined, ViewPosition: m.ViewPosition, AccessionNumber: strings.TrimSpace(m.AccessionNumber),
		InstitutionName: strings.TrimSpace(m.InstitutionName), Bytes: int64(len(part10)),
	}
	for what, uid := range map[string]string{"Study Instance UID": r.StudyInstanceUID, "Series Instance UID": r.SeriesInstanceUID, "SOP Instance UID": r.SOPInstanceUID} {
		if err := radgate.CheckUID(what, uid); err != nil {
			return InstanceRecord{}, err
		}
	}
	return r, nil
}

func objectName(study, sop string) string  { return study + "/" + sop }
func subjectOf(study, sop string) string   { return SubjectImages + study + "." + sop }
func instanceKey(study, sop string) string { return "i." + study + "." + sop }
func accessionKey(acsn string) string {
	sum := sha256.Sum256([]byte(acsn))
	return "a." + hex.EncodeToString(sum[:16])
}

// Put stores one instance (its Part 10 file and its index record) durably:
// one message of StreamImages when it fits the connection's max_payload,
// else an object of BucketImages and its BucketStudies entry. Storing an
// instance again replaces it.
func (a *Archive) Put(ctx context.Context, rec InstanceRecord, part10 []byte) error {
	if rec.ReceivedAt.IsZero() {
		rec.ReceivedAt = time.Now()
	}
	// The UIDs name the message's subject: no wildcard or empty token.
	for what, uid := range map[string]string{"Study Instance UID": rec.StudyInstanceUID, "SOP Instance UID": rec.SOPInstanceUID} {
		if err := radgate.CheckUID(what, uid); err != nil {
			return fmt.Errorf("storing an instance: %w", err)
		}
	}
	b, _ := json.Marshal(rec)
	subject := subjectOf(rec.StudyInstanceUID, rec.SOPInstanceUID)
	limit := a.js.Conn().MaxPayload()
	if a.maxMessage > 0 {
		limit = a.maxMessage
	}
	if int64(len(part10)+len(b)+headerRoom) <= limit {
		// The payload is part10 itself: nats.go copies it once, into the
		// connection's write buffer.
		m := &nats.Msg{Subject: subject, Header: nats.Header{HeaderInstance: []string{string(b)}}, Data: part10}
		if _, err := a.js.PublishMsg(ctx, m, jetstream.WithExpectStream(StreamImages)); err != nil {
			return fmt.Errorf("storing instance %s: %w", rec.SOPInstanceUID, err)
		}
	} else {
		if _, err := a.obj.Put(ctx, jetstream.ObjectMeta{Name: objectName(rec.StudyInstanceUID, rec.SOPInstanceUID), Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunkSize}}, bytes.NewReader(part10)); err != nil {
			return fmt.Errorf("storing instance %s: %w", rec.SOPInstanceUID, err)
		}
		if _, err := a.kv.Put(ctx, instanceKey(rec.StudyInstanceUID, rec.SOPInstanceUID), b); err != nil {
			return fmt.Errorf("indexing instance %s: %w", rec.SOPInstanceUID, err)
		}
		// An earlier, smaller copy in the stream would be found first.
		if err := a.stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
			return fmt.Errorf("replacing instance %s: %w", rec.SOPInstanceUID, err)
		}
	}
	a.mu.Lock()
	a.size += int64(len(part10)) // what Room reads until the next look at the store
	a.mu.Unlock()
	if rec.AccessionNumber != "" && !a.indexed(rec.AccessionNumber, rec.StudyInstanceUID) {
		if _, err := a.kv.Put(ctx, accessionKey(rec.AccessionNumber), []byte(rec.StudyInstanceUID)); err != nil {
			return fmt.Errorf("indexing the accession number of study %s: %w", rec.StudyInstanceUID, err)
		}
		a.mu.Lock()
		if len(a.acsn) >= maxRemembered {
			clear(a.acsn)
		}
		a.acsn[rec.AccessionNumber] = rec.StudyInstanceUID
		a.mu.Unlock()
	}
	return nil
}

// headerRoom is what a StreamImages message's header adds beyond its
// record: the header's own framing and JetStream's expected-stream header.
const headerRoom = 256

// maxRemembered bounds the accession numbers an Archive remembers having
// indexed (a study's later instances need no second index write).
const maxRemembered = 4096

func (a *Archive) indexed(acsn, study string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acsn[acsn] == study
}

// Records lists the index records of a study, in SOP Instance UID order;
// none when radgate holds none of it. An instance held in both forms (sent
// again after its first copy) is the stream's.
func (a *Archive) Records(ctx context.Context, studyUID string) ([]InstanceRecord, error) {
	if radgate.CheckUID("Study Instance UID", studyUID) != nil {
		return nil, nil
	}
	inStream, err := a.streamRecords(ctx, studyUID)
	if err != nil {
		return nil, err
	}
	out, err := a.objectRecords(ctx, studyUID)
	if err != nil {
		return nil, err
	}
	out = slices.DeleteFunc(out, func(r InstanceRecord) bool { _, ok := inStream[r.SOPInstanceUID]; return ok })
	for _, r := range inStream {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SOPInstanceUID < out[j].SOPInstanceUID })
	return out, nil
}

// objectRecords reads the BucketStudies entries of a study's objects.
func (a *Archive) objectRecords(ctx context.Context, studyUID string) ([]InstanceRecord, error) {
	w, err := a.kv.Watch(ctx, "i."+studyUID+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("reading the index of study %s: %w", studyUID, err)
	}
	defer w.Stop()
	var out []InstanceRecord
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("reading the index of study %s: watch closed", studyUID)
			}
			if e == nil { // every current value has been delivered
				return out, nil
			}
			var r InstanceRecord
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				return nil, fmt.Errorf("index entry %s: %w", e.Key(), err)
			}
			if r.StudyInstanceUID == studyUID { // not a study whose UID continues this one's
				out = append(out, r)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// streamRecords reads the records of a study's StreamImages messages, by
// SOP Instance UID: their headers only (an ephemeral consumer delivering
// headers), never the files.
func (a *Archive) streamRecords(ctx context.Context, studyUID string) (map[string]InstanceRecord, error) {
	c, err := a.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: SubjectImages + studyUID + ".>", HeadersOnly: true, DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("reading the images of study %s: %w", studyUID, err)
	}
	defer func() { _ = a.stream.DeleteConsumer(context.WithoutCancel(ctx), c.CachedInfo().Name) }()
	out := map[string]InstanceRecord{}
	for pending := c.CachedInfo().NumPending; pending > 0; {
		batch, err := c.FetchNoWait(int(min(pending, 256)))
		if err != nil {
			return nil, fmt.Errorf("reading the images of study %s: %w", studyUID, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if md, err := m.Metadata(); err == nil {
				pending = md.NumPending
			}
			var r InstanceRecord
			if err := json.Unmarshal([]byte(m.Headers().Get(HeaderInstance)), &r); err != nil {
				return nil, fmt.Errorf("image message %s: its %s header: %w", m.Subject(), HeaderInstance, err)
			}
			if r.StudyInstanceUID == studyUID {
				out[r.SOPInstanceUID] = r
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("reading the images of study %s: %w", studyUID, err)
		}
		if n == 0 { // expired or purged meanwhile
			break
		}
	}
	return out, nil
}

// FindStudy implements radgate.StudySource over the pushed instances.
func (a *Archive) FindStudy(ctx context.Context, q radgate.StudyQuery) (*radgate.Study, error) {
	recs, err := a.studyRecords(ctx, q)
	if err != nil {
		return nil, err
	}
	return StudyOf(recs), nil
}

// studyRecords returns the records of the study q asks for (none wraps
// radgate.ErrStudyNotFound).
func (a *Archive) studyRecords(ctx context.Context, q radgate.StudyQuery) ([]InstanceRecord, error) {
	uid := radgate.StripUIDPrefix(q.StudyInstanceUID)
	if uid == "" && strings.TrimSpace(q.AccessionNumber) != "" {
		e, err := a.kv.Get(ctx, accessionKey(strings.TrimSpace(q.AccessionNumber)))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: no pushed study has accession number %q", radgate.ErrStudyNotFound, q.AccessionNumber)
		}
		if err != nil {
			return nil, radgate.Transient(fmt.Errorf("reading the image index: %w", err))
		}
		uid = string(e.Value())
	}
	recs, err := a.Records(ctx, uid)
	if err != nil {
		return nil, radgate.Transient(err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: study %s was not pushed to radgate", radgate.ErrStudyNotFound, uid)
	}
	return recs, nil
}

// StudyOf builds the study the records describe (one study's records).
func StudyOf(recs []InstanceRecord) *radgate.Study {
	st := &radgate.Study{StudyInstanceUID: recs[0].StudyInstanceUID}
	series := map[string]int{}
	for _, r := range recs {
		if st.AccessionNumber == "" {
			st.AccessionNumber = r.AccessionNumber
		}
		if st.InstitutionName == "" {
			st.InstitutionName = r.InstitutionName
		}
		if r.ReceivedAt.After(st.LastArrival) {
			st.LastArrival = r.ReceivedAt
		}
		i, ok := series[r.SeriesInstanceUID]
		if !ok {
			i = len(st.Series)
			series[r.SeriesInstanceUID] = i
			st.Series = append(st.Series, radgate.Series{SeriesInstanceUID: r.SeriesInstanceUID, Modality: r.Modality, BodyPartExamined: r.BodyPartExamined})
		}
		st.Series[i].Instances = append(st.Series[i].Instances, radgate.Instance{SOPInstanceUID: r.SOPInstanceUID, SOPClassUID: r.SOPClassUID, ViewPosition: r.ViewPosition})
	}
	return st
}

// RetrieveInstance implements radgate.StudySource: the Part 10 file as it
// was pushed.
func (a *Archive) RetrieveInstance(ctx context.Context, studyUID, _, sopInstanceUID string) ([]byte, error) {
	if radgate.CheckUID("Study Instance UID", studyUID) != nil || radgate.CheckUID("SOP Instance UID", sopInstanceUID) != nil {
		return nil, fmt.Errorf("%w: instance %q of study %q is not in radgate's image store", radgate.ErrStudyNotFound, sopInstanceUID, studyUID)
	}
	m, err := a.stream.GetLastMsgForSubject(ctx, subjectOf(studyUID, sopInstanceUID))
	if err == nil {
		return m.Data, nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, radgate.Transient(fmt.Errorf("reading instance %s from the image store: %w", sopInstanceUID, err))
	}
	b, err := a.obj.GetBytes(ctx, objectName(studyUID, sopInstanceUID))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: instance %s of study %s is not in radgate's image store", radgate.ErrStudyNotFound, sopInstanceUID, studyUID)
	}
	if err != nil {
		return nil, radgate.Transient(fmt.Errorf("reading instance %s from the image store: %w", sopInstanceUID, err))
	}
	return b, nil
}

// WithPACS is a StudySource that looks in the archive first, then in the
// PACS: a study pushed to radgate is scored from what was pushed, any other
// from the PACS.
func (a *Archive) WithPACS(pacs radgate.StudySource) radgate.StudySource {
	if pacs == nil {
		return a
	}
	return &layered{local: a, pacs: pacs}
}

type layered struct {
	local *Archive
	pacs  radgate.StudySource
}

// FindStudy: a study pushed to radgate as the archive holds it; any other
// as the PACS describes it. A study the archive holds only because radgate
// retrieved it from the PACS (a DIMSE-only PACS's C-MOVE or C-GET) is the
// PACS's too, so that images added there later are seen; the archive's
// copy answers only while the PACS cannot.
func (l *layered) FindStudy(ctx context.Context, q radgate.StudyQuery) (*radgate.Study, error) {
	recs, err := l.local.studyRecords(ctx, q)
	if err != nil && !errors.Is(err, radgate.ErrStudyNotFound) {
		return nil, err
	}
	if err == nil && !slices.ContainsFunc(recs, func(r InstanceRecord) bool { return !r.Retrieved }) {
		st, perr := l.pacs.FindStudy(ctx, q)
		if perr != nil {
			return StudyOf(recs), nil
		}
		return st, nil
	}
	if err == nil {
		return StudyOf(recs), nil
	}
	return l.pacs.FindStudy(ctx, q)
}

func (l *layered) RetrieveInstance(ctx context.Context, studyUID, seriesUID, sopInstanceUID string) ([]byte, error) {
	b, err := l.local.RetrieveInstance(ctx, studyUID, seriesUID, sopInstanceUID)
	if err == nil || !errors.Is(err, radgate.ErrStudyNotFound) {
		return b, err
	}
	return l.pacs.RetrieveInstance(ctx, studyUID, seriesUID, sopInstanceUID)
}

// chunkSize is the object store chunk of a stored instance: 512 KiB, four
// times nats.go's default, so a radiograph is a few messages (fewer
// publishes and acknowledgements) while each stays under NATS's 1 MiB
// default max_payload.
const chunkSize = 512 << 10

// OpenArchive opens the image store in js as it is, creating and changing
// nothing: a hub reading an edge's through the edge's JetStream domain
// (issue 16), where only the edge declares it.
func OpenArchive(ctx context.Context, js jetstream.JetStream) (*Archive, error) {
	stream, err := js.Stream(ctx, StreamImages)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", StreamImages, err)
	}
	obj, err := js.ObjectStore(ctx, BucketImages)
	if err != nil {
		return nil, fmt.Errorf("opening object store %s: %w", BucketImages, err)
	}
	kv, err := js.KeyValue(ctx, BucketStudies)
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", BucketStudies, err)
	}
	return &Archive{js: js, stream: stream, obj: obj, kv: kv, acsn: map[string]string{}}, nil
}
