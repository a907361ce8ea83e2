package dimse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawAssociate opens an association by hand, for tests that then break
// the protocol. Context 1 is Verification, 3 CR storage.
func rawAssociate(t *testing.T, addr, calling string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rq := &assocPDU{ProtocolVersion: 1, CalledAE: "RADGATE", CallingAE: calling, AppContext: ApplicationContext,
		Contexts: []PresentationContext{
			{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: StorageSOPClasses[0], TransferSyntaxes: []string{ExplicitVRLittleEndian}},
		},
		User: userInfo{MaxPDULength: 16384}}
	if _, err := nc.Write(encodeAssoc(rq, true)); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, _, err := readPDU(nc, 1<<20, nil)
	if err != nil || typ != pduAssociateAC {
		t.Fatalf("raw associate: PDU 0x%02x %v", typ, err)
	}
	return nc
}

// expectAbort reads PDUs until an A-ABORT, which it returns.
func expectAbort(t *testing.T, nc net.Conn) Abort {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		typ, body, err := readPDU(nc, 1<<20, nil)
		if err != nil {
			t.Fatalf("waiting for A-ABORT: %v", err)
		}
		if typ == pduAbort {
			ab, err := decodeAbort(body)
			if err != nil {
				t.Fatal(err)
			}
			return ab
		}
	}
}

// storeCommand is a C-STORE-RQ on context 3.
func storeCommand(uid string) []byte {
	c := NewCommand(CStoreRQ)
	c.SetUint16(TagMessageID, 1)
	c.SetString(TagAffectedSOPClassUID, StorageSOPClasses[0])
	c.SetString(TagAffectedSOPInstanceUID, uid)
	c.SetUint16(TagPriority, PriorityMedium)
	c.SetUint16(TagCommandDataSetType, DataSetPresent)
	b := c.Encode()
	return append(appendPDataHeader(nil, 3, true, true, len(b)), b...)
}

func dataPDU(ctx byte, last bool, data []byte) []byte {
	return append(appendPDataHeader(nil, ctx, false, last, len(data)), data...)
}

func TestRejectCalledAE(t *testing.T) {
	addr, logs := startServer(t, &Server{AETitle: "RADGATE"})
	_, err := (&Dialer{CallingAE: "SCU", CalledAE: "OTHER"}).Dial(context.Background(), addr, StoreContexts(nil))
	var rj *RejectError
	if !errors.As(err, &rj) || rj.Reject != RejectCalledAENotRecognized || !strings.Contains(err.Error(), "called-AE-title-not-recognized") {
		t.Fatalf("got %v", err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "association rejected") })
}

func TestRejectCallingAE(t *testing.T) {
	addr, logs := startServer(t, &Server{AETitle: "RADGATE", Accept: func(ctx context.Context, rq *AssociateRequest) *Reject {
		if rq.CallingAE != "KNOWN" {
			return &RejectCallingAENotRecognized
		}
		return nil
	}})
	_, err := (&Dialer{CallingAE: "STRANGER", CalledAE: "RADGATE"}).Dial(context.Background(), addr, StoreContexts(nil))
	var rj *RejectError
	if !errors.As(err, &rj) || rj.Reject != RejectCallingAENotRecognized {
		t.Fatalf("got %v", err)
	}
	h, p := hostPort(t, addr)
	out, err := run(t, "echoscu", "-aet", "STRANGER", "-aec", "RADGATE", h, p)
	if err == nil || !strings.Contains(out, "Calling AE Title Not Recognized") {
		t.Errorf("echoscu: %v\n%s", err, out)
	}
	if _, err := (&Dialer{CallingAE: "KNOWN", CalledAE: "RADGATE"}).Dial(context.Background(), addr, StoreContexts(nil)); err != nil {
		t.Errorf("known caller: %v", err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "calling=STRANGER") })
}

func TestOversizedPDUAborts(t *testing.T) {
	addr, logs := startServer(t, &Server{AETitle: "RADGATE", MaxPDULength: 16384})
	nc := rawAssociate(t, addr, "HOSTILE")
	// A length one past the bound, then nothing: the server must not wait
	// for (or allocate) the body.
	nc.Write(appendPDUHeader(nil, pduPData, 16385))
	if ab := expectAbort(t, nc); ab != (Abort{Source: AbortServiceProvider, Reason: AbortInvalidPDUParameter}) {
		t.Errorf("abort %v", ab)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "PDU length beyond") })
	// Before negotiation the bound is 64 KiB.
	nc2, _ := net.Dial("tcp", addr)
	defer nc2.Close()
	nc2.Write(appendPDUHeader(nil, pduAssociateRQ, 1<<31))
	if ab := expectAbort(t, nc2); ab.Reason != AbortInvalidPDUParameter {
		t.Errorf("oversized A-ASSOCIATE-RQ: %v", ab)
	}
}

func TestUnknownContextAborts(t *testing.T) {
	addr, _ := startServer(t, &Server{AETitle: "RADGATE", Store: &memStore{}})
	nc := rawAssociate(t, addr, "HOSTILE")
	c := NewCommand(CEchoRQ)
	c.SetUint16(TagMessageID, 1)
	b := c.Encode()
	nc.Write(append(appendPDataHeader(nil, 5, true, true, len(b)), b...))
	if ab := expectAbort(t, nc); ab != (Abort{Source: AbortServiceProvider, Reason: AbortInvalidPDUParameter}) {
		t.Errorf("abort %v", ab)
	}
}

var assocOf = regexp.MustCompile(`assoc=(\w+)`)

// TestCutStoreKeepsServing: one association's C-STORE is cut (a complete
// fragment then a close; a PDU cut inside; a PDV on another context while
// a data set is open) while another association stores: the handler of
// the cut one sees a read error and nothing is kept, the server logs the
// association id, the other association succeeds.
func TestCutStoreKeepsServing(t *testing.T) {
	for name, cut := range map[string]func(net.Conn){
		"close after fragment": func(nc net.Conn) { nc.Write(dataPDU(3, false, make([]byte, 1000))); nc.Close() },
		"truncated PDV": func(nc net.Conn) {
			b := dataPDU(3, false, make([]byte, 1000))
			nc.Write(b[:500])
			nc.Close()
		},
		"command inside data set": func(nc net.Conn) {
			nc.Write(dataPDU(3, false, make([]byte, 10)))
			nc.Write(storeCommand("1.9.9"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := &memStore{}
			addr, logs := startServer(t, &Server{AETitle: "RADGATE", Store: st})
			ctx := context.Background()
			good, err := (&Dialer{CallingAE: "GOOD", CalledAE: "RADGATE"}).Dial(ctx, addr, StoreContexts(StorageSOPClasses[:1], ExplicitVRLittleEndian))
			if err != nil {
				t.Fatal(err)
			}
			nc := rawAssociate(t, addr, "CUTTER")
			nc.Write(storeCommand("1.2.666"))
			cut(nc)
			waitFor(t, func() bool { return len(st.failures()) == 1 })
			f := st.failures()[0]
			if f.rq.SOPInstanceUID != "1.2.666" || f.rq.Association.CallingAE != "CUTTER" {
				t.Errorf("failure %+v", f)
			}
			var pe *ProtocolError
			if !errors.Is(f.err, ErrDataSetCut) && !errors.As(f.err, &pe) {
				t.Errorf("handler's read error: %v", f.err)
			}
			if _, ok := st.get("1.2.666"); ok {
				t.Error("cut instance stored")
			}
			s, err := good.Store(ctx, StorageSOPClasses[0], "1.2.777", ExplicitVRLittleEndian, bytes.NewReader([]byte("data")))
			if err != nil || s != StatusSuccess {
				t.Fatalf("other association: %v %v", s, err)
			}
			if err := good.Release(ctx); err != nil {
				t.Fatal(err)
			}
			var cutID string
			waitFor(t, func() bool {
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, "C-STORE data set failed") && strings.Contains(line, "calling=CUTTER") {
						cutID = assocOf.FindStringSubmatch(line)[1]
						return true
					}
				}
				return false
			})
			if !strings.Contains(logs.String(), "assoc="+cutID) || cutID == good.ID() {
				t.Errorf("cut association %q not logged apart", cutID)
			}
		})
	}
}

// TestIdleTimerAborts: a C-STORE whose data set never finishes is aborted
// after Idle; the handler's Read fails.
func TestIdleTimerAborts(t *testing.T) {
	st := &memStore{}
	addr, logs := startServer(t, &Server{AETitle: "RADGATE", Store: st, Idle: 300 * time.Millisecond})
	nc := rawAssociate(t, addr, "SLOW")
	nc.Write(storeCommand("1.2.3"))
	nc.Write(dataPDU(3, false, make([]byte, 100)))
	start := time.Now()
	ab := expectAbort(t, nc)
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Errorf("aborted after %v, Idle is 300ms", el)
	}
	if ab.Source != AbortServiceProvider {
		t.Errorf("abort %v", ab)
	}
	waitFor(t, func() bool { return len(st.failures()) == 1 })
	if !isTimeout(st.failures()[0].err) {
		t.Errorf("handler's error: %v", st.failures()[0].err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "timer expired") })
}

// TestARTIM: a connection that sends no A-ASSOCIATE-RQ is closed after
// ARTIM.
func TestARTIM(t *testing.T) {
	addr, _ := startServer(t, &Server{AETitle: "RADGATE", ARTIM: 200 * time.Millisecond})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, _ = io.Copy(io.Discard, nc)
	if el := time.Since(start); el < 150*time.Millisecond || el > 3*time.Second {
		t.Errorf("closed after %v, ARTIM is 200ms", el)
	}
}

func TestAssociationLimits(t *testing.T) {
	addr, _ := startServer(t, &Server{AETitle: "RADGATE", MaxAssociations: 2, MaxPerCaller: 1})
	ctx := context.Background()
	dial := func(calling string) (*Association, error) {
		return (&Dialer{CallingAE: calling, CalledAE: "RADGATE"}).Dial(ctx, addr, StoreContexts(nil))
	}
	x, err := dial("X")
	if err != nil {
		t.Fatal(err)
	}
	var rj *RejectError
	if _, err := dial("X"); !errors.As(err, &rj) || rj.Reject != RejectLocalLimitExceeded {
		t.Errorf("second X: %v", err)
	}
	y, err := dial("Y")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial("Z"); !errors.As(err, &rj) || rj.Reject != RejectTemporaryCongestion {
		t.Errorf("third association: %v", err)
	}
	x.Release(ctx)
	y.Abort()
	waitFor(t, func() bool {
		a, err := dial("X")
		if err == nil {
			a.Release(ctx)
		}
		return err == nil
	})
}

func TestMaxInstanceBytes(t *testing.T) {
	st := &memStore{}
	addr, _ := startServer(t, &Server{AETitle: "RADGATE", Store: st, MaxInstanceBytes: 1000, MaxPDULength: 256})
	ctx := context.Background()
	a, err := (&Dialer{CallingAE: "BIG", CalledAE: "RADGATE"}).Dial(ctx, addr, StoreContexts(StorageSOPClasses[:1], ExplicitVRLittleEndian))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := a.Store(ctx, StorageSOPClasses[0], "1.1", ExplicitVRLittleEndian, bytes.NewReader(make([]byte, 1000))); err != nil || s != StatusSuccess {
		t.Fatalf("at the limit: %v %v", s, err)
	}
	_, err = a.Store(ctx, StorageSOPClasses[0], "1.2", ExplicitVRLittleEndian, bytes.NewReader(make([]byte, 5000)))
	if err == nil {
		t.Fatal("oversized instance accepted")
	}
	waitFor(t, func() bool { return len(st.failures()) == 1 })
	if f := st.failures()[0]; !errors.Is(f.err, ErrInstanceTooLarge) {
		t.Errorf("handler's error: %v", f.err)
	}
	if _, ok := st.get("1.2"); ok {
		t.Error("oversized instance stored")
	}
}

// TestShutdown: cancelling Serve's context aborts open associations, ends
// a handler's read and returns.
func TestShutdown(t *testing.T) {
	var once sync.Once
	inHandler := make(chan struct{})
	st := &memStore{before: func(*StoreRequest) { once.Do(func() { close(inHandler) }) }}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{AETitle: "RADGATE", Store: st}).Serve(ctx, ln) }()
	nc := rawAssociate(t, ln.Addr().String(), "SCU")
	nc.Write(storeCommand("1.2.3"))
	nc.Write(dataPDU(3, false, make([]byte, 10)))
	<-inHandler
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if ab := expectAbort(t, nc); ab.Source != AbortServiceUser {
		t.Errorf("abort %v", ab)
	}
	if len(st.failures()) != 1 {
		t.Error("handler's read did not fail")
	}
}

// TestListenAndServe: the plain entry point serves and stops on cancel.
func TestListenAndServe(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{AETitle: "RADGATE", Addr: addr}).ListenAndServe(ctx) }()
	waitFor(t, func() bool {
		a, err := (&Dialer{CallingAE: "SCU", CalledAE: "RADGATE"}).Dial(ctx, addr, StoreContexts(nil))
		if err == nil {
			err = a.Echo(ctx)
			a.Release(ctx)
		}
		return err == nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe: %v", err)
	}
	if err := (&Server{AETitle: "RADGATE", Addr: "127.0.0.1:-1"}).ListenAndServe(context.Background()); err == nil {
		t.Error("bad address accepted")
	}
}

// TestRejectProtocol: a request without protocol version 1 or with
// another application context is rejected as PS3.8 says.
func TestRejectProtocol(t *testing.T) {
	addr, _ := startServer(t, &Server{AETitle: "RADGATE"})
	for want, mutate := range map[Reject]func(*assocPDU){
		RejectProtocolVersionUnsupported: func(p *assocPDU) { p.ProtocolVersion = 2 },
		RejectAppContextNotSupported:     func(p *assocPDU) { p.AppContext = "1.2.3" },
	} {
		p := sampleRQ()
		mutate(p)
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(encodeAssoc(p, true))
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, body, err := readPDU(nc, 1<<16, nil)
		nc.Close()
		if err != nil || typ != pduAssociateRJ {
			t.Fatalf("%v: PDU 0x%02x %v", want, typ, err)
		}
		if got, _ := decodeReject(body); got != want {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}
