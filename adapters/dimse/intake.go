package dimse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/radgate/radgate"
)

// Intake is radgate's Storage SCP behind the protocol: it admits only the
// facilities' AE titles (from their networks, where listed), keeps every
// pushed instance durably in the Archive before the success status is
// sent, and makes each pushed study an order (radgate.SourceDIMSE) that
// the pipeline scores once the study is stable — the same order as the
// study's EHR/RIS order, matched by accession number or Study Instance
// UID.
type Intake struct {
	Archive    *Archive
	Orders     radgate.Intake
	Facilities *radgate.Facilities
	// AccessionSystem is given to the pushed Accession Number (dimse.accession_system).
	AccessionSystem string
	// PACSAETitles are callers admitted beside the facilities': the
	// DIMSE-only PACS that C-MOVEs studies to radgate (pacs.dimse.called_ae).
	// What they send is stored and makes no order.
	PACSAETitles []string
	// MaxInstanceBytes bounds one instance; MinFreeBytes is the room the
	// image store must have left for a new association.
	MaxInstanceBytes int64
	MinFreeBytes     int64
	Logger           *slog.Logger
	// Now is the clock (tests replace it).
	Now func() time.Time

	mu        sync.Mutex
	announced map[string]bool // association id + study UID → its order event is recorded
}

// nonImageModalities are series radgate stores but that make no order: the
// objects a PACS or a viewer writes about images (radgate's own among
// them).
// maxAnnounced bounds what Intake remembers of the orders it recorded.
const maxAnnounced = 4096

var nonImageModalities = []string{"SR", "KO", "PR", "DOC", "REG", "SEG", "RWV", "PLAN"}

func (in *Intake) log() *slog.Logger {
	if in.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return in.Logger
}

func (in *Intake) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// Accept decides whether to take an association (Server.Accept): the
// calling AE title must be a facility's, its source address within that
// facility's networks when it lists any, and the image store must have
// room.
func (in *Intake) Accept(ctx context.Context, rq *AssociateRequest) *Reject {
	log := in.log().With("calling_ae", rq.CallingAE, "remote", addrString(rq.Remote))
	fac := in.Facilities.ByAETitle(rq.CallingAE)
	if fac == "" && slices.Contains(in.PACSAETitles, rq.CallingAE) {
		if err := in.Archive.Room(ctx, in.MinFreeBytes); err != nil {
			log.Warn("association rejected: the image store is low on space", "err", err)
			return &RejectTemporaryCongestion
		}
		return nil
	}
	if fac == "" {
		log.Warn("association rejected: calling AE title is not in the facility list (facilities[].ae_titles)")
		return &RejectCallingAENotRecognized
	}
	if f, ok := in.Facilities.Get(fac); ok && len(f.Networks) > 0 {
		if ip, ok := remoteIP(rq.Remote); !ok || in.Facilities.ByAddress(ip) != fac {
			log.Warn("association rejected: source address is not in the networks of the calling AE title's facility", "facility", fac)
			return &RejectCallingAENotRecognized
		}
	}
	if err := in.Archive.Room(ctx, in.MinFreeBytes); err != nil {
		log.Warn("association rejected: the image store is low on space", "facility", fac, "err", err)
		return &RejectTemporaryCongestion
	}
	return nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func remoteIP(a net.Addr) (netip.Addr, bool) {
	if a == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// Store keeps one pushed instance (StoreHandler): read whole within
// MaxInstanceBytes, checked, stored with its index record, its study's
// order recorded; only then success. Any failure keeps nothing of it and
// answers a failure status the sender may retry. An instance radgate
// asked for makes no order: a C-STORE sub-operation of radgate's own
// C-MOVE (Move Originator AE title = radgate's) or any C-STORE from a PACS
// of PACSAETitles.
func (in *Intake) Store(ctx context.Context, rq *StoreRequest, data io.Reader) Status {
	log := in.log().With("assoc", rq.Association.ID, "calling_ae", rq.Association.CallingAE, "sop_instance", rq.SOPInstanceUID)
	retrieved := rq.MoveOriginatorAE != "" && rq.MoveOriginatorAE == rq.Association.CalledAE ||
		in.Facilities.ByAETitle(rq.Association.CallingAE) == "" && slices.Contains(in.PACSAETitles, rq.Association.CallingAE)
	rec, st := keepInstance(ctx, in.Archive, in.MaxInstanceBytes, in.now(), retrieved, log, rq, data)
	if st != StatusSuccess {
		return st
	}
	if retrieved {
		log.Debug("instance retrieved from the PACS stored; no order", "study", rec.StudyInstanceUID, "move_originator", rq.MoveOriginatorAE)
		return StatusSuccess
	}
	if err := in.order(ctx, rq.Association, rec); err != nil {
		log.Warn("C-STORE refused: instance stored, its order not recorded (a resend records it)", "study", rec.StudyInstanceUID, "err", err)
		return StatusOutOfResources
	}
	log.Debug("instance stored", "study", rec.StudyInstanceUID, "bytes", rec.Bytes)
	return StatusSuccess
}

// keepInstance reads one C-STORE's data set whole (within maxBytes, when
// positive) into a pooled buffer as a Part 10 file, checks it and stores it
// in the archive with its index record (marked Retrieved when radgate
// asked for it). Anything but StatusSuccess keeps nothing.
func keepInstance(ctx context.Context, archive *Archive, maxBytes int64, now time.Time, retrieved bool, log *slog.Logger, rq *StoreRequest, data io.Reader) (InstanceRecord, Status) {
	if maxBytes <= 0 {
		maxBytes = 1<<63 - 2
	}
	file := getFile()
	defer putFile(file)
	counted := &countingReader{r: io.LimitReader(data, maxBytes+1)}
	if err := WritePart10(file, rq, counted); err != nil {
		if counted.err != nil {
			log.Warn("C-STORE data set not received whole; nothing stored", "err", counted.err)
			return InstanceRecord{}, StatusProcessingFailure
		}
		log.Warn("C-STORE refused: file meta information not written", "err", err)
		return InstanceRecord{}, StatusCannotUnderstand
	}
	if counted.n > maxBytes {
		_, _ = io.Copy(io.Discard, data) // the rest of the message, so the association goes on
		log.Warn("C-STORE refused: instance larger than dimse.max_instance_bytes; nothing stored", "limit", maxBytes)
		return InstanceRecord{}, StatusOutOfResources
	}
	rec, err := RecordOf(file.Bytes())
	if err != nil {
		log.Warn("C-STORE refused: data set not readable", "err", err)
		return InstanceRecord{}, StatusCannotUnderstand
	}
	if rec.SOPInstanceUID != rq.SOPInstanceUID || rec.SOPClassUID != rq.SOPClassUID {
		log.Warn("C-STORE refused: the data set's SOP Class/Instance UIDs differ from the command's", "data_set_sop_instance", rec.SOPInstanceUID)
		return InstanceRecord{}, StatusDataSetDoesNotMatch
	}
	rec.CallingAE, rec.ReceivedAt, rec.Retrieved = rq.Association.CallingAE, now, retrieved
	if err := archive.Put(ctx, rec, file.Bytes()); err != nil {
		log.Warn("C-STORE refused: the image store did not take the instance", "study", rec.StudyInstanceUID, "err", err)
		return InstanceRecord{}, StatusOutOfResources
	}
	return rec, StatusSuccess
}

// freeFiles holds the buffers instances are received into: a radiograph
// is megabytes, and growing a fresh buffer for each costs more than storing
// it. A channel, not a sync.Pool: a pool drops its buffers at every garbage
// collection, which ingest itself makes frequent (measured: 10 % of all
// that was allocated was these buffers regrown). At most maxFreeFiles are
// kept, each at most maxPooled: 128 MiB held at the most.
var freeFiles = make(chan *bytes.Buffer, maxFreeFiles)

const (
	maxFreeFiles = 8
	// maxPooled: larger buffers (a rare huge instance, stored in the
	// object store anyway) are not kept.
	maxPooled = 16 << 20
)

// getFile returns an empty buffer, a kept one when there is one.
func getFile() *bytes.Buffer {
	select {
	case b := <-freeFiles:
		return b
	default:
		return new(bytes.Buffer)
	}
}

// putFile keeps b for the next instance, unless it is too large or
// enough are kept.
func putFile(b *bytes.Buffer) {
	if b.Cap() > maxPooled {
		return
	}
	b.Reset()
	select {
	case freeFiles <- b:
	default:
	}
}

// countingReader counts what it reads and keeps its reader's error.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// order records the study's order event once per association.
func (in *Intake) order(ctx context.Context, as AssociationInfo, rec InstanceRecord) error {
	if slices.Contains(nonImageModalities, rec.Modality) {
		return nil
	}
	key := as.ID + "/" + rec.StudyInstanceUID
	in.mu.Lock()
	done := in.announced[key]
	in.mu.Unlock()
	if done {
		return nil
	}
	ev := radgate.OrderEvent{
		Source: radgate.SourceDIMSE, ResourceType: "ImagingStudy", ReceivedAt: rec.ReceivedAt,
		StudyInstanceUID: rec.StudyInstanceUID, Facility: in.Facilities.ByAETitle(as.CallingAE),
		EventID: "dimse/" + as.ID + "/" + rec.StudyInstanceUID,
	}
	if rec.Modality != "" {
		ev.Modalities = []string{rec.Modality}
	}
	if rec.AccessionNumber != "" {
		ev.Accession = &radgate.Identifier{System: in.AccessionSystem, Value: rec.AccessionNumber}
	}
	st, err := in.Orders.Accept(ctx, ev)
	if err != nil && !errors.Is(err, radgate.ErrOrderCancelled) {
		return err
	}
	in.mu.Lock()
	if in.announced == nil || len(in.announced) >= maxAnnounced {
		// Only a shortcut: a second event of one association is one
		// message anyway (EventID, JetStream's duplicate window).
		in.announced = map[string]bool{}
	}
	in.announced[key] = true
	in.mu.Unlock()
	if err != nil {
		in.log().Info("images pushed for a cancelled order; stored, not scored", "assoc", as.ID, "study", rec.StudyInstanceUID)
		return nil
	}
	in.log().Info("pushed study recorded as an order", "assoc", as.ID, "order", st.ID, "study", rec.StudyInstanceUID)
	return nil
}
