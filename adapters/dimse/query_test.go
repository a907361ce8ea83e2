package dimse

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeQR is a Query/Retrieve SCP for one association: it accepts the
// Study Root contexts in Implicit VR Little Endian and hands each command
// to serve until the requestor releases.
func fakeQR(t *testing.T, serve func(a *assoc, ctxID byte, cmd *Command)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		a := newAssoc(nc, DefaultMaxPDULength, 10*time.Second)
		_, body, err := a.readPDU()
		if err != nil {
			return
		}
		p, err := decodeAssoc(body, true)
		if err != nil {
			return
		}
		rq := requestFromPDU(p, nc.RemoteAddr())
		ac := acceptPDU(p, rq, ContextPolicy{AbstractSyntaxes: []string{StudyRootFind, StudyRootMove, StudyRootGet},
			TransferSyntaxes: []string{ImplicitVRLittleEndian}}, false, DefaultMaxPDULength)
		a.maxSend = rq.MaxPDULength
		a.contexts = map[byte]PresentationContext{}
		for _, pc := range ac.Contexts {
			if pc.Result == ContextAccepted {
				a.contexts[pc.ID] = pc
			}
		}
		if a.write(encodeAssoc(ac, false)) != nil {
			return
		}
		for {
			ctxID, cmd, err := a.readCommand()
			if errors.Is(err, errReleaseRequested) {
				_ = a.write(encodeRelease(pduReleaseRP))
				return
			}
			if err != nil {
				return
			}
			if cmd.HasDataSet() {
				if drain(a, ctxID, 0) != nil {
					return
				}
			}
			serve(a, ctxID, cmd)
		}
	}()
	return ln.Addr().String()
}

// findResponse is a C-FIND-RSP to rq with status st and, when pending, a
// match.
func findResponse(a *assoc, ctxID byte, rq *Command, st Status, match *Dataset) error {
	rsp := response(rq, CFindRSP, st)
	if match != nil {
		rsp.SetUint16(TagCommandDataSetType, DataSetPresent)
	}
	if err := a.writeCommand(ctxID, rsp); err != nil {
		return err
	}
	if match != nil {
		return a.writeDataSet(ctxID, bytes.NewReader(match.Encode(false)))
	}
	return nil
}

// TestFindCancel: when ctx ends during a C-FIND, a C-CANCEL-RQ for its
// message goes out; the SCP's Cancel status ends the operation with the
// context's error, and the association serves the next C-FIND.
func TestFindCancel(t *testing.T) {
	pendingSent := make(chan struct{})
	cancelled := make(chan uint16, 1)
	finds := 0
	addr := fakeQR(t, func(a *assoc, ctxID byte, cmd *Command) {
		if finds++; finds > 1 {
			_ = findResponse(a, ctxID, cmd, StatusSuccess, nil) // no match
			return
		}
		// The first C-FIND: one match, then the cancel is awaited.
		_ = findResponse(a, ctxID, cmd, StatusPending, NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: "1.2.3"}))
		close(pendingSent)
		next, c, err := a.readCommand()
		if err != nil || c.Field() != CCancelRQ || next != ctxID {
			return
		}
		id, _ := c.Uint16(TagMessageIDBeingRespondedTo)
		cancelled <- id
		_ = findResponse(a, ctxID, cmd, StatusCancel, nil)
	})
	d := &Dialer{CallingAE: "RG", CalledAE: "QR", Timeout: 5 * time.Second}
	as, err := d.Dial(t.Context(), addr, QueryRetrieveContexts(nil))
	require.NoError(t, err)
	defer as.Abort()

	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-pendingSent; cancel() }()
	got, err := as.Find(ctx, StudyRootFind, NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: ""}))
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "C-FIND cancelled")
	assert.Len(t, got, 1, "the match before the cancel")
	select {
	case id := <-cancelled:
		assert.Equal(t, uint16(1), id, "C-CANCEL-RQ names the C-FIND's message ID")
	default:
		t.Fatal("no C-CANCEL-RQ reached the SCP")
	}

	got, err = as.Find(t.Context(), StudyRootFind, NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: ""}))
	require.NoError(t, err, "the association is still usable")
	assert.Empty(t, got)
	require.NoError(t, as.Release(t.Context()))
}

// TestCancelUnansweredAborts: a peer that ignores the C-CANCEL has the
// association aborted once the Dialer's Timeout passes.
func TestCancelUnansweredAborts(t *testing.T) {
	pendingSent := make(chan struct{})
	addr := fakeQR(t, func(a *assoc, ctxID byte, cmd *Command) {
		_ = findResponse(a, ctxID, cmd, StatusPending, NewIdentifier(LevelStudy, nil))
		close(pendingSent)
		_, _, _ = a.readCommand() // the C-CANCEL, unanswered
		_, _, _ = a.readCommand() // then the abort
	})
	d := &Dialer{CallingAE: "RG", CalledAE: "QR", Timeout: 300 * time.Millisecond}
	as, err := d.Dial(t.Context(), addr, QueryRetrieveContexts(nil))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-pendingSent; cancel() }()
	start := time.Now()
	_, err = as.Find(ctx, StudyRootFind, NewIdentifier(LevelStudy, nil))
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	_, err = as.Find(t.Context(), StudyRootFind, NewIdentifier(LevelStudy, nil))
	assert.ErrorContains(t, err, "failed earlier", "the association was ended")
}

// TestFindFailureStatusIsNamed: a failure status is a *StatusError naming
// the status, and the association goes on.
func TestFindFailureStatusIsNamed(t *testing.T) {
	addr := fakeQR(t, func(a *assoc, ctxID byte, cmd *Command) {
		rsp := response(cmd, cmd.Field()|0x8000, StatusQROutOfResources)
		rsp.SetString(TagErrorComment, "index busy")
		_ = a.writeCommand(ctxID, rsp)
	})
	d := &Dialer{CallingAE: "RG", CalledAE: "QR", Timeout: 5 * time.Second}
	as, err := d.Dial(t.Context(), addr, QueryRetrieveContexts(nil))
	require.NoError(t, err)
	defer as.Abort()
	_, err = as.Find(t.Context(), StudyRootFind, NewIdentifier(LevelStudy, nil))
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.True(t, se.Transient())
	assert.Equal(t, "dimse: C-FIND answered refused: out of resources (0xA700): index busy", err.Error())
	_, err = as.Move(t.Context(), "DEST", NewIdentifier(LevelStudy, nil))
	require.Error(t, err)
	require.NoError(t, as.Release(t.Context()))
}
