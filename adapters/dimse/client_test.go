package dimse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/testenv"
)

// bufConn is a net.Conn that records what is written.
type bufConn struct {
	net.Conn
	w bytes.Buffer
}

func (c *bufConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *bufConn) SetDeadline(time.Time) error      { return nil }
func (c *bufConn) SetWriteDeadline(time.Time) error { return nil }

// TestFragmentation checks the PDUs writeCommand and writeDataSet send at
// several maximum lengths: each within the peer's maximum, one PDV each,
// the last-fragment bit on the last only, the data intact.
func TestFragmentation(t *testing.T) {
	data := make([]byte, 100_003)
	for i := range data {
		data[i] = byte(i * 7)
	}
	cmd := NewCommand(CStoreRQ)
	cmd.SetString(TagAffectedSOPInstanceUID, strings.Repeat("1.2", 20))
	for _, max := range []uint32{7, 8, 64, 1000, 16384, 16390, 100_009, 1 << 20, 0} {
		for _, size := range []int{0, 1, 57, 58, 59, 16384, len(data)} {
			c := &bufConn{}
			a := newAssoc(c, 1<<20, time.Second)
			a.maxSend = max
			if err := a.writeCommand(3, cmd); err != nil {
				t.Fatal(err)
			}
			if err := a.writeDataSet(3, bytes.NewReader(data[:size])); err != nil {
				t.Fatal(err)
			}
			r := bytes.NewReader(c.w.Bytes())
			var gotCmd, gotData []byte
			cmdDone, dataDone := false, false
			for r.Len() > 0 {
				typ, body, err := readPDU(r, 1<<21, nil)
				if err != nil || typ != pduPData {
					t.Fatalf("max %d size %d: PDU 0x%02x %v", max, size, typ, err)
				}
				if max != 0 && uint32(len(body)) > max {
					t.Errorf("max %d: PDU of %d bytes", max, len(body))
				}
				pdvs, err := parsePData(body, nil)
				if err != nil || len(pdvs) != 1 || pdvs[0].ContextID != 3 {
					t.Fatalf("max %d: %+v %v", max, pdvs, err)
				}
				p := pdvs[0]
				if cmdDone && p.Command || dataDone {
					t.Fatalf("max %d size %d: fragment after the last", max, size)
				}
				if p.Command {
					gotCmd = append(gotCmd, p.Data...)
					cmdDone = p.Last
				} else {
					gotData = append(gotData, p.Data...)
					dataDone = p.Last
				}
			}
			if !cmdDone || !dataDone || !bytes.Equal(gotCmd, cmd.Encode()) || !bytes.Equal(gotData, data[:size]) {
				t.Errorf("max %d size %d: command done %v data done %v, %d/%d data bytes", max, size, cmdDone, dataDone, len(gotData), size)
			}
		}
	}
}

// TestDialerToServer: both ends ours, at several maximum lengths each way;
// data sets arrive intact, statuses come back, release is orderly.
func TestDialerToServer(t *testing.T) {
	sizes := []int{0, 1, 249, 250, 251, 70_001, 1 << 20}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, srvMax := range []uint32{64, 256, 16384, DefaultMaxPDULength} {
		for _, cliMax := range []uint32{256, DefaultMaxPDULength} {
			t.Run(fmt.Sprintf("server%d_client%d", srvMax, cliMax), func(t *testing.T) {
				st := &memStore{}
				addr, logs := startServer(t, &Server{AETitle: "RADGATE", Store: st, MaxPDULength: srvMax})
				d := &Dialer{CallingAE: "RADGATE_SCU", CalledAE: "RADGATE", MaxPDULength: cliMax, Timeout: 10 * time.Second}
				ctx := context.Background()
				a, err := d.Dial(ctx, addr, StoreContexts([]string{StorageSOPClasses[0]}, ExplicitVRLittleEndian, ImplicitVRLittleEndian))
				if err != nil {
					t.Fatal(err)
				}
				if got := a.Accepted(StorageSOPClasses[0]); len(got) != 1 || got[0] != ExplicitVRLittleEndian {
					t.Errorf("accepted %v", got)
				}
				if err := a.Echo(ctx); err != nil {
					t.Fatal(err)
				}
				for i, n := range sizes {
					data := make([]byte, n)
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					uid := fmt.Sprintf("1.2.3.%d", i)
					s, err := a.Store(ctx, StorageSOPClasses[0], uid, ExplicitVRLittleEndian, bytes.NewReader(data))
					if err != nil || s != StatusSuccess {
						t.Fatalf("store %d bytes: %v %v\n%s", n, s, err, logs)
					}
					if got, ok := st.get(uid); !ok || !bytes.Equal(got.data, data) || got.rq.MessageID == 0 || got.rq.Association.CallingAE != "RADGATE_SCU" {
						t.Errorf("store %d bytes: stored %v, %d bytes", n, ok, len(got.data))
					}
				}
				if _, err := a.Store(ctx, StorageSOPClasses[0], "1.2", JPEGBaseline8Bit, bytes.NewReader(nil)); err == nil || !strings.Contains(err.Error(), StorageSOPClasses[0]) || !strings.Contains(err.Error(), JPEGBaseline8Bit) {
					t.Errorf("store without a context: %v", err)
				}
				if err := a.Release(ctx); err != nil {
					t.Fatal(err)
				}
				if err := a.Echo(ctx); err == nil {
					t.Error("echo after release succeeded")
				}
				waitFor(t, func() bool { return strings.Contains(logs.String(), "association released") })
			})
		}
	}
}

// TestDialerUserIdentity: the server's Accept sees the identity and may
// reject; a positive response comes back when asked for.
func TestDialerUserIdentity(t *testing.T) {
	var seen atomic.Pointer[UserIdentity]
	addr, _ := startServer(t, &Server{AETitle: "RADGATE", Accept: func(ctx context.Context, rq *AssociateRequest) *Reject {
		seen.Store(rq.UserIdentity)
		if rq.UserIdentity.Username() != "alice" || string(rq.UserIdentity.Secondary) != "right" {
			return &RejectNoReasonGiven
		}
		return nil
	}})
	ctx := context.Background()
	d := &Dialer{CallingAE: "SCU", CalledAE: "RADGATE", UserIdentity: &UserIdentity{Type: UserIdentityUsernamePasscode,
		PositiveResponseRequested: true, Primary: []byte("alice"), Secondary: []byte("right")}}
	a, err := d.Dial(ctx, addr, StoreContexts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if a.UserIdentityResponse() == nil || seen.Load().Username() != "alice" {
		t.Errorf("positive response %v, seen %v", a.UserIdentityResponse(), seen.Load())
	}
	a.Release(ctx)
	d.UserIdentity.Secondary = []byte("wrong")
	_, err = d.Dial(ctx, addr, StoreContexts(nil))
	var rj *RejectError
	if !errors.As(err, &rj) || rj.Reject != RejectNoReasonGiven {
		t.Errorf("wrong passcode: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Error("the error shows the passcode")
	}
}

// orthancDIMSE returns Orthanc's DICOM address and AE title.
func orthancDIMSE(t *testing.T) (string, string, testenv.PACS) {
	t.Helper()
	pacs := testenv.Orthanc(t)
	port, aet := os.Getenv("RADGATE_TEST_ORTHANC_DICOM_PORT"), os.Getenv("RADGATE_TEST_ORTHANC_AET")
	if port == "" || aet == "" {
		if testenv.Required() {
			t.Fatal("RADGATE_TEST_ORTHANC_DICOM_PORT / _AET unset: source testenv/run/env.sh")
		}
		t.Skip("Orthanc's DICOM port unknown")
	}
	return net.JoinHostPort("127.0.0.1", port), aet, pacs
}

// TestDialerToOrthanc: Echo, then C-STORE of uncompressed and compressed
// testdata into Orthanc, found afterwards over its REST API.
func TestDialerToOrthanc(t *testing.T) {
	addr, aet, pacs := orthancDIMSE(t)
	var files []part10
	for _, f := range cxrFiles(t) {
		switch f.transferSyntax {
		case ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, JPEG2000Lossless:
			files = append(files, f)
		}
	}
	var contexts []PresentationContext
	contexts = append(contexts, PresentationContext{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}})
	for _, f := range files {
		contexts = append(contexts, PresentationContext{AbstractSyntax: f.sopClass, TransferSyntaxes: []string{f.transferSyntax}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := &Dialer{CallingAE: "RADGATE", CalledAE: aet}
	a, err := d.Dial(ctx, addr, contexts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Abort()
	if err := a.Echo(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		s, err := a.Store(ctx, f.sopClass, f.sopInstance, f.transferSyntax, bytes.NewReader(f.dataset))
		if err != nil || !s.IsSuccess() {
			t.Fatalf("%s: %v %v", f.path, s, err)
		}
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		q, _ := json.Marshal(map[string]any{"Level": "Instance", "Query": map[string]string{"SOPInstanceUID": f.sopInstance}})
		rq, _ := http.NewRequestWithContext(ctx, "POST", pacs.URL+"/tools/find", bytes.NewReader(q))
		rq.SetBasicAuth(pacs.Username, pacs.Password)
		rsp, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		var ids []string
		if err := json.Unmarshal(body, &ids); err != nil || len(ids) != 1 {
			t.Errorf("%s: Orthanc finds %s (%v)", f.path, body, err)
		}
	}
}

// TestDialerContextCancel: cancelling an operation's context ends the
// association; the error says so, and the association is unusable after.
func TestDialerContextCancel(t *testing.T) {
	// A slow handler: 4 KiB per millisecond.
	st := StoreHandlerFunc(func(ctx context.Context, rq *StoreRequest, data io.Reader) Status {
		buf := make([]byte, 4096)
		for {
			if _, err := data.Read(buf); err != nil {
				return StatusOutOfResources
			}
			time.Sleep(time.Millisecond)
		}
	})
	addr, logs := startServer(t, &Server{AETitle: "RADGATE", Store: st})
	a, err := (&Dialer{CallingAE: "SCU", CalledAE: "RADGATE"}).Dial(context.Background(), addr, StoreContexts(StorageSOPClasses[:1], ExplicitVRLittleEndian))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<20) // far more than the handler reads in 300 ms
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = a.Store(ctx, StorageSOPClasses[0], "1.2.3", ExplicitVRLittleEndian, bytes.NewReader(big))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if err := a.Echo(context.Background()); err == nil {
		t.Error("echo on an aborted association succeeded")
	}
	// The write stopped inside a PDU: no A-ABORT can follow it, the
	// connection is closed, and the server's handler sees its data set cut.
	waitFor(t, func() bool { return strings.Contains(logs.String(), "C-STORE data set failed") })
}

// TestDialerRoleSelection: a C-GET style proposal (SCU and SCP for a
// storage class) is answered SCU yes, SCP no: this server never sends
// C-STOREs back.
func TestDialerRoleSelection(t *testing.T) {
	addr, _ := startServer(t, &Server{AETitle: "RADGATE", Store: &memStore{}})
	ctx := context.Background()
	d := &Dialer{CallingAE: "SCU", CalledAE: "RADGATE", RoleSelections: map[string]Role{StorageSOPClasses[0]: {SCU: true, SCP: true}}}
	a, err := d.Dial(ctx, addr, StoreContexts(StorageSOPClasses[:1], ExplicitVRLittleEndian))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(ctx)
	if r, ok := a.Role(StorageSOPClasses[0]); !ok || !r.SCU || r.SCP {
		t.Errorf("role answered %+v (%v)", r, ok)
	}
}
