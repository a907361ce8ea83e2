package dimse

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"slices"
	"testing"
)

// storescuRQ is the A-ASSOCIATE-RQ dcmtk 3.6.7's storescu sends (captured
// once: 128 presentation contexts).
func storescuRQ(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/storescu-associate-rq.bin")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pduSeeds(t testing.TB) [][]byte {
	var pd []byte
	pd = appendPDataHeader(pd, 1, true, true, 4)
	pd = append(pd, 1, 2, 3, 4)
	rq := sampleRQ()
	ac := acceptPDU(rq, requestFromPDU(rq, nil), ContextPolicy{}, true, 16384)
	// dcmtk's request with its first 6 contexts: the whole of it (9.6 KB)
	// stalls the fuzzer's coverage-guided mutation.
	_, body, err := readPDU(bytes.NewReader(storescuRQ(t)), minPDULength, nil)
	if err != nil {
		t.Fatal(err)
	}
	dcmtk, err := decodeAssoc(body, true)
	if err != nil {
		t.Fatal(err)
	}
	dcmtk.Contexts = dcmtk.Contexts[:6]
	return [][]byte{
		encodeAssoc(dcmtk, true), encodeAssoc(rq, true), encodeAssoc(ac, false), encodeReject(RejectCalledAENotRecognized),
		encodeAbort(Abort{Source: AbortServiceProvider, Reason: AbortInvalidPDUParameter}), encodeRelease(pduReleaseRQ), pd,
	}
}

// FuzzReadPDU: any byte stream read as a PDU (bounded at 64 KiB) and
// decoded by its type either fails with an error or decodes to a value
// that encodes and decodes back to itself.
func FuzzReadPDU(f *testing.F) {
	for _, s := range pduSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, body, err := readPDU(bytes.NewReader(data), minPDULength, nil)
		if err != nil {
			return
		}
		if len(body) > minPDULength {
			t.Fatalf("body of %d bytes past the bound", len(body))
		}
		switch typ {
		case pduAssociateRQ, pduAssociateAC:
			rq := typ == pduAssociateRQ
			p, err := decodeAssoc(body, rq)
			if err != nil {
				return
			}
			_, body2, err := readPDU(bytes.NewReader(encodeAssoc(p, rq)), 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := decodeAssoc(body2, rq)
			if err != nil {
				t.Fatalf("re-encoded A-ASSOCIATE does not decode: %v", err)
			}
			if !reflect.DeepEqual(normalize(p), normalize(p2)) {
				t.Fatalf("round trip:\n%+v\n%+v", p, p2)
			}
		case pduAssociateRJ:
			if rj, err := decodeReject(body); err == nil {
				_, b2, _ := readPDU(bytes.NewReader(encodeReject(rj)), 16, nil)
				if rj2, _ := decodeReject(b2); rj2 != rj {
					t.Fatal("A-ASSOCIATE-RJ round trip")
				}
				_ = rj.String()
			}
		case pduAbort:
			if ab, err := decodeAbort(body); err == nil {
				_, b2, _ := readPDU(bytes.NewReader(encodeAbort(ab)), 16, nil)
				if ab2, _ := decodeAbort(b2); ab2 != ab {
					t.Fatal("A-ABORT round trip")
				}
			}
		case pduPData:
			pdvs, err := parsePData(body, nil)
			if err != nil {
				return
			}
			n := 0
			for _, p := range pdvs {
				n += pdvHeaderLength + len(p.Data)
				b := append(appendPDataHeader(nil, p.ContextID, p.Command, p.Last, len(p.Data)), p.Data...)
				_, b2, err := readPDU(bytes.NewReader(b), 1<<20, nil)
				if err != nil {
					t.Fatal(err)
				}
				q, err := parsePData(b2, nil)
				if err != nil || len(q) != 1 || q[0].ContextID != p.ContextID || q[0].Command != p.Command || q[0].Last != p.Last || !bytes.Equal(q[0].Data, p.Data) {
					t.Fatalf("PDV round trip: %+v %v", q, err)
				}
			}
			if n != len(body) {
				t.Fatalf("PDVs cover %d of %d bytes", n, len(body))
			}
		}
	})
}

// normalize makes empty slices nil for comparison.
func normalize(p *assocPDU) *assocPDU {
	q := *p
	q.Contexts = slices.Clone(p.Contexts)
	for i := range q.Contexts {
		if len(q.Contexts[i].TransferSyntaxes) == 0 {
			q.Contexts[i].TransferSyntaxes = nil
		}
	}
	if len(q.User.IdentityResponse) == 0 {
		q.User.IdentityResponse = nil
	}
	if len(q.User.Roles) == 0 {
		q.User.Roles = nil
	}
	return &q
}

// FuzzDecodeCommand: a command set decodes or fails; a decoded one
// encodes to bytes that decode to the same command, and encoding is
// stable.
func FuzzDecodeCommand(f *testing.F) {
	c := NewCommand(CStoreRQ)
	c.SetUint16(TagMessageID, 7)
	c.SetString(TagAffectedSOPClassUID, StorageSOPClasses[0])
	c.SetString(TagAffectedSOPInstanceUID, "1.2.3.4")
	c.SetUint16(TagCommandDataSetType, DataSetPresent)
	f.Add(c.Encode())
	f.Add(response(c, CStoreRSP, StatusOutOfResources).Encode())
	e := NewCommand(CEchoRQ)
	e.SetUint16(TagMessageID, 1)
	f.Add(e.Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			return
		}
		b := c.Encode()
		c2, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if !reflect.DeepEqual(c.elems, c2.elems) || !bytes.Equal(c2.Encode(), b) {
			t.Fatal("command round trip differs")
		}
		_ = c.Field()
		_, _ = c.Status()
		_ = c.String(TagAffectedSOPInstanceUID)
	})
}

// FuzzNegotiate: an arbitrary A-ASSOCIATE-RQ body goes through the
// server's whole decision (version, application context, called AE,
// limits, Accept, contexts). A rejection is one of PS3.8's; an acceptance
// answers each distinct proposed ID once, accepts only contexts whose
// abstract syntax the policy has and with a transfer syntax both proposed
// and in the policy, and its A-ASSOCIATE-AC decodes.
func FuzzNegotiate(f *testing.F) {
	for _, s := range pduSeeds(f)[:2] {
		f.Add(s[pduHeaderLength:])
	}
	s := &Server{AETitle: "RADGATE", Store: &memStore{}, MaxAssociations: 10, MaxPerCaller: 5,
		Accept: func(ctx context.Context, rq *AssociateRequest) *Reject {
			if rq.UserIdentity != nil && rq.UserIdentity.Username() == "" {
				return &RejectNoReasonGiven
			}
			return nil
		}}
	valid := map[Reject]bool{RejectProtocolVersionUnsupported: true, RejectAppContextNotSupported: true, RejectCalledAENotRecognized: true, RejectNoReasonGiven: true}
	policy := s.Contexts
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodeAssoc(body, true)
		if err != nil {
			return
		}
		rq := requestFromPDU(p, nil)
		rj, ac, release := s.decide(context.Background(), p, rq)
		if release != nil {
			release()
		}
		if rj != nil {
			if !valid[*rj] {
				t.Fatalf("rejection %v", rj)
			}
			return
		}
		_, b, err := readPDU(bytes.NewReader(encodeAssoc(ac, false)), 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAssoc(b, false)
		if err != nil {
			t.Fatalf("A-ASSOCIATE-AC does not decode: %v", err)
		}
		seen := map[byte]bool{}
		for _, a := range got.Contexts {
			if seen[a.ID] {
				t.Fatalf("context %d answered twice", a.ID)
			}
			seen[a.ID] = true
			i := slices.IndexFunc(p.Contexts, func(pc PresentationContext) bool { return pc.ID == a.ID })
			if i < 0 {
				t.Fatalf("context %d answered, not proposed", a.ID)
			}
			pc := p.Contexts[i]
			if a.Result == ContextAccepted && (!slices.Contains(pc.TransferSyntaxes, a.TransferSyntax) ||
				!slices.Contains(policy.transfer(), a.TransferSyntax) || !slices.Contains(policy.abstract(), pc.AbstractSyntax) || a.ID%2 == 0) {
				t.Fatalf("context %d accepted with %s for %s", a.ID, a.TransferSyntax, pc.AbstractSyntax)
			}
		}
		for _, pc := range p.Contexts {
			if !seen[pc.ID] {
				t.Fatalf("context %d not answered", pc.ID)
			}
		}
		if got.User.MaxPDULength != s.maxPDU() {
			t.Fatalf("max length %d", got.User.MaxPDULength)
		}
		s.mu.Lock()
		open := s.open
		s.mu.Unlock()
		if open != 0 {
			t.Fatalf("%d associations counted after release", open)
		}
	})
}

// TestNegotiateStorescuRequest: dcmtk's storescu request decodes, and the
// default policy accepts its CR contexts, in Explicit VR LE where proposed.
func TestNegotiateStorescuRequest(t *testing.T) {
	_, body, err := readPDU(bytes.NewReader(storescuRQ(t)), minPDULength, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := decodeAssoc(body, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.CallingAE != "MODALITY1" || p.CalledAE != "RADGATE" || len(p.Contexts) < 100 || p.User.MaxPDULength == 0 || p.User.ImplClassUID == "" {
		t.Fatalf("decoded %s→%s, %d contexts, max %d, impl %q", p.CallingAE, p.CalledAE, len(p.Contexts), p.User.MaxPDULength, p.User.ImplClassUID)
	}
	ans := negotiate(p.Contexts, ContextPolicy{}, true)
	cr := 0
	for i, a := range ans {
		if p.Contexts[i].AbstractSyntax == StorageSOPClasses[0] && a.Result == ContextAccepted {
			cr++
			if slices.Contains(p.Contexts[i].TransferSyntaxes, ExplicitVRLittleEndian) && a.TransferSyntax != ExplicitVRLittleEndian {
				t.Errorf("CR context %d proposing Explicit VR LE accepted in %s", a.ID, a.TransferSyntax)
			}
		}
	}
	if cr == 0 {
		t.Error("CR storage not accepted")
	}
}
