package dimse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate/derived"
)

// BucketSent is the object store where the dimse destinations remember what
// they stored: one object per destination × result × revision, named
// "<destination>/<result id>/r<revision>", whose metadata is the
// SentRecord and whose content is the smallest object stored (Part 10), from
// which a rejection note copies patient and study. A PACS reached over
// DIMSE cannot be asked what it holds the way QIDO-RS can (C-FIND by SOP
// Instance UID is optional for a Storage SCP): this is how an amendment or
// a retraction knows what to reject.
const BucketSent = "radgate_dimse_sent"

// SentRecord is what a dimse destination stored of one revision of one
// result. Identifiers only: no patient data (that is in the kept object).
type SentRecord struct {
	Destination      string              `json:"destination"`
	ResultID         string              `json:"result"`
	Revision         int                 `json:"revision"`
	StudyInstanceUID string              `json:"study"`
	Objects          []derived.ObjectRef `json:"objects"`
	// Kept is the SOP Instance UID of the object whose bytes are kept.
	Kept     string    `json:"kept"`
	StoredAt time.Time `json:"stored_at"`
}

// metaRecord is the object metadata key that holds the SentRecord.
const metaRecord = "record"

// Sent is BucketSent.
type Sent struct{ store jetstream.ObjectStore }

// OpenSent creates BucketSent (file storage), or sets its age limit on the
// existing one (0: kept until removed).
func OpenSent(ctx context.Context, js jetstream.JetStream, maxAge time.Duration) (*Sent, error) {
	st, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      BucketSent,
		Description: "what the dimse destinations stored, per destination, result and revision (for rejection notes)",
		Storage:     jetstream.FileStorage,
		TTL:         maxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("opening object store %s: %w", BucketSent, err)
	}
	return &Sent{store: st}, nil
}

func sentName(destination, resultID string, revision int) string {
	return destination + "/" + resultID + "/r" + strconv.Itoa(max(revision, 1))
}

// Put remembers rec with kept, the Part 10 bytes of the object rec.Kept
// names. Putting the same revision again replaces it.
func (s *Sent) Put(ctx context.Context, rec SentRecord, kept []byte) error {
	js, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	name := sentName(rec.Destination, rec.ResultID, rec.Revision)
	_, err = s.store.Put(ctx, jetstream.ObjectMeta{Name: name, Metadata: map[string]string{metaRecord: string(js)}}, bytes.NewReader(kept))
	if err != nil {
		return fmt.Errorf("remembering %s in %s: %w", name, BucketSent, err)
	}
	return nil
}

// Get returns what destination stored of the revision of the result and
// the kept object's bytes; ok is false when it stored nothing (or it is
// no longer kept).
func (s *Sent) Get(ctx context.Context, destination, resultID string, revision int) (rec SentRecord, kept []byte, ok bool, err error) {
	name := sentName(destination, resultID, revision)
	fail := func(err error) (SentRecord, []byte, bool, error) {
		return SentRecord{}, nil, false, fmt.Errorf("reading %s from %s: %w", name, BucketSent, err)
	}
	res, err := s.store.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return SentRecord{}, nil, false, nil
	}
	if err != nil {
		return fail(err)
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return fail(err)
	}
	if kept, err = io.ReadAll(res); err != nil {
		return fail(err)
	}
	if err := json.Unmarshal([]byte(info.Metadata[metaRecord]), &rec); err != nil {
		return fail(fmt.Errorf("its record: %w", err))
	}
	return rec, kept, true, nil
}
