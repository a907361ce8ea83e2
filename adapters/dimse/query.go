package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Study Root Query/Retrieve Information Model SOP classes (PS3.4 C.6.2.1).
const (
	StudyRootFind = "1.2.840.10008.5.1.4.1.2.2.1"
	StudyRootMove = "1.2.840.10008.5.1.4.1.2.2.2"
	StudyRootGet  = "1.2.840.10008.5.1.4.1.2.2.3"
)

// Query/Retrieve levels (0008,0052).
const (
	LevelStudy  = "STUDY"
	LevelSeries = "SERIES"
	LevelImage  = "IMAGE"
)

// Statuses of C-FIND, C-MOVE and C-GET (PS3.4 C.4.1.1.4, C.4.2.1.5,
// C.4.3.1.4) beyond those of C-STORE.
const (
	StatusQROutOfResources            Status = 0xA700 // C-FIND: refused, out of resources
	StatusOutOfResourcesMatches       Status = 0xA701 // C-MOVE/C-GET: unable to calculate the number of matches
	StatusOutOfResourcesSubOperations Status = 0xA702 // C-MOVE/C-GET: unable to perform sub-operations
	StatusMoveDestinationUnknown      Status = 0xA801 // C-MOVE: the destination AE title is not known to the SCP
	StatusIdentifierDoesNotMatch      Status = 0xA900 // identifier does not match the SOP class
	StatusUnableToProcess             Status = 0xC000 // 0xCxxx: unable to process
	StatusSubOperationsWithFailures   Status = 0xB000 // C-MOVE/C-GET warning: sub-operations complete, one or more failed
	StatusOptionalKeysNotSupported    Status = 0xFF01 // C-FIND pending: a match, some optional keys not supported
)

// qrStatusString names a Query/Retrieve status.
func qrStatusString(s Status) string {
	name := ""
	switch {
	case s == StatusOutOfResourcesMatches:
		name = "refused: out of resources, unable to calculate the number of matches"
	case s == StatusOutOfResourcesSubOperations:
		name = "refused: out of resources, unable to perform sub-operations"
	case s&0xFF00 == 0xA700:
		name = "refused: out of resources"
	case s == StatusMoveDestinationUnknown:
		name = "refused: move destination unknown"
	case s&0xFF00 == 0xA900:
		name = "error: identifier does not match SOP class"
	case s&0xF000 == 0xC000:
		name = "failed: unable to process"
	case s == StatusSubOperationsWithFailures:
		name = "warning: sub-operations complete, one or more failures"
	default:
		return s.String()
	}
	return fmt.Sprintf("%s (0x%04X)", name, uint16(s))
}

// StatusError is a final failure status of a C-FIND, C-MOVE or C-GET.
type StatusError struct {
	Op      string // "C-FIND", "C-MOVE", "C-GET"
	Status  Status
	Comment string // Error Comment (0000,0902), when sent
}

func (e *StatusError) Error() string {
	s := "dimse: " + e.Op + " answered " + qrStatusString(e.Status)
	if e.Comment != "" {
		s += ": " + e.Comment
	}
	return s
}

// Transient reports a status a later try may not get: out of resources.
func (e *StatusError) Transient() bool { return e.Status&0xFF00 == 0xA700 }

// MoveResult counts the sub-operations of a C-MOVE or C-GET as its last
// response reported them, with its final status (success, or the warning
// StatusSubOperationsWithFailures).
type MoveResult struct {
	Completed, Failed, Warning, Remaining int
	Status                                Status
}

// maxIdentifierBytes bounds one response's identifier.
const maxIdentifierBytes = 1 << 20

// QueryRetrieveContexts returns the presentation contexts to propose for
// the Study Root model: FIND, MOVE and GET in Explicit and Implicit VR
// Little Endian, and, for C-GET, one context per SOP class of storeClasses
// with transferSyntaxes (nil: Explicit and Implicit VR Little Endian);
// storeClasses also need the SCP role (GetRoles).
func QueryRetrieveContexts(storeClasses []string, transferSyntaxes ...string) []PresentationContext {
	le := []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}
	out := []PresentationContext{
		{AbstractSyntax: StudyRootFind, TransferSyntaxes: le},
		{AbstractSyntax: StudyRootMove, TransferSyntaxes: le},
		{AbstractSyntax: StudyRootGet, TransferSyntaxes: le},
	}
	if len(transferSyntaxes) == 0 {
		transferSyntaxes = le
	}
	for _, c := range storeClasses {
		out = append(out, PresentationContext{AbstractSyntax: c, TransferSyntaxes: transferSyntaxes})
	}
	return out
}

// GetRoles returns the role selections a C-GET requestor proposes for the
// storage SOP classes it retrieves: SCP, so that the C-STORE
// sub-operations come back on the same association (PS3.7 D.3.3.4).
func GetRoles(storeClasses []string) map[string]Role {
	m := make(map[string]Role, len(storeClasses))
	for _, c := range storeClasses {
		m[c] = Role{SCP: true}
	}
	return m
}

// Find sends a C-FIND-RQ with the identifier for model (StudyRootFind)
// and returns the identifiers of its pending responses once the final
// status comes. A failure status is a *StatusError. When ctx ends first, a
// C-CANCEL-RQ is sent; the association stays usable if the peer answers
// it within the Dialer's Timeout.
func (as *Association) Find(ctx context.Context, model string, identifier *Dataset) ([]*Dataset, error) {
	var out []*Dataset
	_, err := as.operate(ctx, "C-FIND", model, CFindRQ, CFindRSP, identifier, "", nil, func(rsp *Command, ds *Dataset) {
		if ds != nil {
			out = append(out, ds)
		}
	})
	if err != nil {
		return out, err
	}
	return out, nil
}

// Move sends a C-MOVE-RQ (Study Root) asking the peer to C-STORE what the
// identifier selects to destAE, and waits for the final response. The
// error is a *StatusError for a failure status; a warning (some
// sub-operations failed) is no error: see the result's counts.
func (as *Association) Move(ctx context.Context, destAE string, identifier *Dataset) (MoveResult, error) {
	if err := checkAE(destAE); err != nil {
		return MoveResult{}, fmt.Errorf("dimse: C-MOVE destination: %w", err)
	}
	return as.operate(ctx, "C-MOVE", StudyRootMove, CMoveRQ, CMoveRSP, identifier, destAE, nil, nil)
}

// Get sends a C-GET-RQ (Study Root) and hands each C-STORE sub-operation
// that arrives on the association to store (its Association is the peer
// calling radgate), answering with the status store returns. The
// association needs accepted storage contexts with the SCP role
// (QueryRetrieveContexts, GetRoles). Errors as Move's.
func (as *Association) Get(ctx context.Context, identifier *Dataset, store StoreHandler) (MoveResult, error) {
	if store == nil {
		return MoveResult{}, errors.New("dimse: C-GET needs a StoreHandler")
	}
	return as.operate(ctx, "C-GET", StudyRootGet, CGetRQ, CGetRSP, identifier, "", store, nil)
}

// operate runs one C-FIND, C-MOVE or C-GET: the request and its
// identifier, then responses (and, for C-GET, C-STORE sub-operations)
// until the final one. onPending gets each pending response and its
// identifier (nil when none).
func (as *Association) operate(ctx context.Context, op, model string, rqField, rspField uint16, identifier *Dataset,
	destAE string, store StoreHandler, onPending func(*Command, *Dataset)) (MoveResult, error) {
	pc, ok := as.findContext(model, "")
	if !ok {
		return MoveResult{}, fmt.Errorf("dimse: association %s has no accepted context for %s (SOP class %s)", as.id, op, model)
	}
	if identifier == nil {
		return MoveResult{}, fmt.Errorf("dimse: %s needs an identifier", op)
	}
	explicit := pc.TransferSyntax != ImplicitVRLittleEndian
	id := as.nextMessageIDLocked()

	// Writes of this operation (request, C-STORE responses, C-CANCEL) go
	// one at a time: the C-CANCEL comes from another goroutine. Before the
	// request is out, the context's end interrupts at once instead.
	var wmu, smu sync.Mutex
	var sent atomic.Bool
	cancelled := false
	var grace *time.Timer
	end, err := as.beginWith(ctx, func() {
		if !sent.Load() {
			as.a.interrupt()
			return
		}
		c := NewCommand(CCancelRQ)
		c.SetUint16(TagMessageIDBeingRespondedTo, id)
		wmu.Lock()
		err := as.a.writeCommand(pc.ID, c)
		wmu.Unlock()
		if err != nil {
			as.a.interrupt()
			return
		}
		as.log.Info("dimse: C-CANCEL sent", "op", op, "msg_id", id)
		smu.Lock()
		cancelled = true
		grace = time.AfterFunc(as.timeout, as.a.interrupt)
		smu.Unlock()
	})
	if err != nil {
		return MoveResult{}, err
	}
	res, rspErr, err := as.operateLocked(ctx, pc, op, model, rqField, rspField, id, identifier.Encode(explicit), destAE, store, onPending, &wmu, &sent)
	err = end(err)
	smu.Lock()
	if grace != nil {
		grace.Stop()
	}
	wasCancelled := cancelled
	smu.Unlock()
	if err != nil {
		return res, fmt.Errorf("dimse: %s on association %s: %w", op, as.id, err)
	}
	if rspErr != nil {
		if rspErr.Status == StatusCancel && wasCancelled {
			return res, fmt.Errorf("dimse: %s cancelled: %w", op, context.Cause(ctx))
		}
		return res, rspErr
	}
	return res, nil
}

// nextMessageIDLocked takes the next message ID under the association's
// lock (operate takes it before begin).
func (as *Association) nextMessageIDLocked() uint16 {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.nextMessageID()
}

// operateLocked is operate's exchange, under the association's lock. err
// means the association must end; rspErr is a final status that is not
// success (nor a warning).
func (as *Association) operateLocked(ctx context.Context, pc PresentationContext, op, model string, rqField, rspField, id uint16, ident []byte,
	destAE string, store StoreHandler, onPending func(*Command, *Dataset), wmu *sync.Mutex, sent *atomic.Bool) (MoveResult, *StatusError, error) {
	as.a.idle = as.timeout
	rq := NewCommand(rqField)
	rq.SetUint16(TagMessageID, id)
	rq.SetString(TagAffectedSOPClassUID, model)
	rq.SetUint16(TagPriority, PriorityMedium)
	rq.SetUint16(TagCommandDataSetType, DataSetPresent)
	if destAE != "" {
		rq.SetString(TagMoveDestination, destAE)
	}
	wmu.Lock()
	// Marked sent before the write, under wmu: a cancel from now on waits
	// for the request to be out and follows it with its C-CANCEL (marked
	// after the write, a response could arrive — and a cancel be asked —
	// before the mark, and the cancel would interrupt instead).
	sent.Store(true)
	err := as.a.writeCommand(pc.ID, rq)
	if err == nil {
		err = as.a.writeDataSet(pc.ID, bytes.NewReader(ident))
	}
	wmu.Unlock()
	if err != nil {
		return MoveResult{}, nil, err
	}
	var res MoveResult
	for {
		quickAck(as.a.nc)
		ctxID, cmd, err := as.a.readCommand()
		if err != nil {
			return res, nil, err
		}
		if cmd.Field() == CStoreRQ && store != nil {
			rsp, err := as.subStore(ctx, ctxID, cmd, store)
			if err != nil {
				return res, nil, err
			}
			wmu.Lock()
			err = as.a.writeCommand(ctxID, rsp)
			wmu.Unlock()
			if err != nil {
				return res, nil, err
			}
			continue
		}
		if cmd.Field() != rspField {
			return res, nil, protoErr(AbortUnexpectedPDUParameter, "command 0x%04x during a %s", cmd.Field(), op)
		}
		if got, _ := cmd.Uint16(TagMessageIDBeingRespondedTo); got != id {
			return res, nil, protoErr(AbortInvalidPDUParameter, "%s response to message %d where %d was awaited", op, got, id)
		}
		var ds *Dataset
		if cmd.HasDataSet() {
			b, err := io.ReadAll(&dataReader{a: as.a, ctx: ctxID, limit: maxIdentifierBytes})
			if err != nil {
				return res, nil, err
			}
			if rqField == CFindRQ {
				ds, err = DecodeDataset(b, as.a.contexts[ctxID].TransferSyntax != ImplicitVRLittleEndian)
				if err != nil {
					return res, nil, protoErr(AbortInvalidPDUParameter, "%s response identifier: %v", op, err)
				}
			}
		}
		st, ok := cmd.Status()
		if !ok {
			return res, nil, protoErr(AbortInvalidPDUParameter, "%s response without a status", op)
		}
		counts(cmd, &res)
		res.Status = st
		if st.IsPending() {
			if onPending != nil {
				onPending(cmd, ds)
			}
			continue
		}
		if st.IsSuccess() || st == StatusSubOperationsWithFailures || (rqField != CFindRQ && st.IsWarning()) {
			return res, nil, nil
		}
		return res, &StatusError{Op: op, Status: st, Comment: cmd.String(TagErrorComment)}, nil
	}
}

// counts reads the sub-operation counts a C-MOVE or C-GET response has.
func counts(c *Command, r *MoveResult) {
	if v, ok := c.Uint16(TagNumberOfCompletedSubops); ok {
		r.Completed = int(v)
	}
	if v, ok := c.Uint16(TagNumberOfFailedSubops); ok {
		r.Failed = int(v)
	}
	if v, ok := c.Uint16(TagNumberOfWarningSubops); ok {
		r.Warning = int(v)
	}
	if v, ok := c.Uint16(TagNumberOfRemainingSubops); ok {
		r.Remaining = int(v)
	} else {
		r.Remaining = 0
	}
}

// subStore serves one C-STORE sub-operation of a C-GET: the handler reads
// the data set as it arrives. An error means the association must end.
func (as *Association) subStore(ctx context.Context, ctxID byte, cmd *Command, store StoreHandler) (*Command, error) {
	pc := as.a.contexts[ctxID]
	rq := &StoreRequest{
		Association:       as.info,
		SOPClassUID:       cmd.String(TagAffectedSOPClassUID),
		SOPInstanceUID:    cmd.String(TagAffectedSOPInstanceUID),
		TransferSyntaxUID: pc.TransferSyntax,
		MoveOriginatorAE:  cmd.String(TagMoveOriginatorAETitle),
	}
	rq.MessageID, _ = cmd.Uint16(TagMessageID)
	rq.Priority, _ = cmd.Uint16(TagPriority)
	rq.MoveOriginatorMessageID, _ = cmd.Uint16(TagMoveOriginatorMessageID)
	if !cmd.HasDataSet() {
		return response(cmd, CStoreRSP, StatusCannotUnderstand), nil
	}
	var st Status
	switch {
	case rq.SOPClassUID != pc.AbstractSyntax:
		st = StatusDataSetDoesNotMatch
	case rq.SOPInstanceUID == "":
		st = StatusCannotUnderstand
	}
	d := &dataReader{a: as.a, ctx: ctxID}
	if st == StatusSuccess {
		st = store.Store(ctx, rq, d)
	}
	if d.err == nil && !d.done || len(d.cur) > 0 {
		_, _ = io.Copy(io.Discard, d)
	}
	if d.err != nil {
		return nil, d.err
	}
	as.log.Debug("dimse: C-STORE sub-operation", "msg_id", rq.MessageID, "sop_instance", rq.SOPInstanceUID, "status", st.String())
	return response(cmd, CStoreRSP, st), nil
}
