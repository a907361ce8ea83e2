package dimse

import (
	"bytes"
	"compress/flate"
	"context"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func hostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// run runs a dcmtk tool and returns its combined output.
func run(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, requireTool(t, name), args...).CombinedOutput()
	return string(out), err
}

func TestEchoscuToServer(t *testing.T) {
	addr, logs := startServer(t, &Server{AETitle: "RADGATE"})
	h, p := hostPort(t, addr)
	out, err := run(t, "echoscu", "-v", "-aet", "MODALITY1", "-aec", "RADGATE", h, p)
	if err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Received Echo Response (Success)") {
		t.Errorf("echoscu did not get a success response:\n%s", out)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "association released") })
	if !strings.Contains(logs.String(), "calling=MODALITY1") {
		t.Errorf("log lacks the calling AE:\n%s", logs)
	}
}

func TestEchoscuWrongCalledAE(t *testing.T) {
	addr, _ := startServer(t, &Server{AETitle: "RADGATE"})
	h, p := hostPort(t, addr)
	out, err := run(t, "echoscu", "-v", "-aet", "MODALITY1", "-aec", "SOMEONE", h, p)
	if err == nil {
		t.Fatalf("echoscu succeeded against a wrong called AE:\n%s", out)
	}
	if !strings.Contains(out, "Called AE Title Not Recognized") {
		t.Errorf("echoscu output does not name the reason:\n%s", out)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

// TestDcmsendEverySyntax stores every testdata/cxr-dicom file with dcmsend
// (compressed syntaxes as they are) into a Server with the default
// policy, and compares the data set each handler got with the file's
// byte for byte. dcmsend proposes each file's own syntax with the
// uncompressed ones, so the default policy's preference shows: Explicit
// VR LE is chosen for the Implicit and Big Endian files (dcmsend converts
// them), compressed ones arrive as they are. dcmsend re-deflates a
// deflated data set, so that one is compared inflated. Every instance is
// written with WritePart10 and read back by suyashkumar/dicom and dcmdump.
func TestDcmsendEverySyntax(t *testing.T) {
	files := cxrFiles(t)
	st := &memStore{}
	addr, logs := startServer(t, &Server{AETitle: "RADGATE", Store: st})
	dcmsend(t, addr, logs, files...)
	dir := t.TempDir()
	for _, f := range files {
		name := filepath.Base(f.path)
		got, ok := st.get(f.sopInstance)
		if !ok {
			t.Errorf("%s: not stored", name)
			continue
		}
		want := f.transferSyntax
		if want == ImplicitVRLittleEndian || want == ExplicitVRBigEndian {
			want = ExplicitVRLittleEndian
		}
		if got.rq.TransferSyntaxUID != want {
			t.Errorf("%s: received in %s, want %s", name, got.rq.TransferSyntaxUID, want)
		}
		switch f.transferSyntax {
		case DeflatedExplicitVRLittleEndian:
			if !bytes.Equal(inflate(t, got.data), inflate(t, f.dataset)) {
				t.Errorf("%s: inflated data set differs", name)
			}
		case ImplicitVRLittleEndian, ExplicitVRBigEndian:
			// Converted by dcmsend: checked by parsing below, and byte for
			// byte in TestDcmsendPreferredSyntax.
		default:
			if !bytes.Equal(got.data, f.dataset) {
				t.Errorf("%s: data set differs: got %d bytes, file has %d", name, len(got.data), len(f.dataset))
			}
		}
		checkPart10(t, filepath.Join(dir, name), &got.rq, got.data)
	}
	if t.Failed() {
		t.Logf("server log:\n%s", logs)
	}
}

// TestDcmsendPreferredSyntax: a Server whose policy prefers Implicit VR
// LE (or Explicit VR BE) gets those files in their own syntax, byte for
// byte.
func TestDcmsendPreferredSyntax(t *testing.T) {
	for _, f := range cxrFiles(t) {
		if f.transferSyntax != ImplicitVRLittleEndian && f.transferSyntax != ExplicitVRBigEndian {
			continue
		}
		t.Run(filepath.Base(f.path), func(t *testing.T) {
			st := &memStore{}
			policy := ContextPolicy{TransferSyntaxes: []string{f.transferSyntax, ExplicitVRLittleEndian}}
			addr, logs := startServer(t, &Server{AETitle: "RADGATE", Store: st, Contexts: policy})
			dcmsend(t, addr, logs, f)
			got, ok := st.get(f.sopInstance)
			if !ok {
				t.Fatalf("not stored; log:\n%s", logs)
			}
			if got.rq.TransferSyntaxUID != f.transferSyntax || !bytes.Equal(got.data, f.dataset) {
				t.Errorf("received %d bytes in %s; file has %d in %s", len(got.data), got.rq.TransferSyntaxUID, len(f.dataset), f.transferSyntax)
			}
			checkPart10(t, filepath.Join(t.TempDir(), "x.dcm"), &got.rq, got.data)
		})
	}
}

func dcmsend(t *testing.T, addr string, logs *lockedBuffer, files ...part10) {
	t.Helper()
	h, p := hostPort(t, addr)
	args := []string{"-v", "-dn", "-aet", "MODALITY1", "-aec", "RADGATE", h, p}
	for _, f := range files {
		args = append(args, f.path)
	}
	out, err := run(t, "dcmsend", args...)
	if err != nil {
		t.Fatalf("dcmsend: %v\n%s\nserver log:\n%s", err, out, logs)
	}
}

// checkPart10 writes the instance with WritePart10 and reads it back with
// suyashkumar/dicom and dcmdump.
func checkPart10(t *testing.T, path string, rq *StoreRequest, data []byte) {
	t.Helper()
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePart10(w, rq, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(path)
	ds, err := dicom.ParseFile(path, nil)
	if err != nil {
		t.Errorf("%s: suyashkumar/dicom: %v", name, err)
	} else if e, err := ds.FindElementByTag(tag.SOPInstanceUID); err != nil || !strings.Contains(e.Value.String(), rq.SOPInstanceUID) {
		t.Errorf("%s: suyashkumar/dicom reads SOP Instance UID %v (%v), want %s", name, e, err, rq.SOPInstanceUID)
	}
	if o, err := run(t, "dcmdump", path); err != nil || strings.Contains(o, "E: ") || strings.Contains(o, "W: ") || !strings.Contains(o, "(7fe0,0010)") {
		t.Errorf("dcmdump %s: %v\n%s", name, err, o)
	}
}

func inflate(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// TestStorescuToServer: dcmtk's storescu (its default proposal: a context
// per SOP class with the uncompressed syntaxes) stores the Explicit VR LE
// file, byte for byte.
func TestStorescuToServer(t *testing.T) {
	var f part10
	for _, c := range cxrFiles(t) {
		if c.transferSyntax == ExplicitVRLittleEndian {
			f = c
		}
	}
	st := &memStore{}
	addr, logs := startServer(t, &Server{AETitle: "RADGATE", Store: st})
	h, p := hostPort(t, addr)
	if out, err := run(t, "storescu", "-aet", "MODALITY1", "-aec", "RADGATE", h, p, f.path); err != nil {
		t.Fatalf("storescu: %v\n%s\n%s", err, out, logs)
	}
	got, ok := st.get(f.sopInstance)
	if !ok || got.rq.TransferSyntaxUID != ExplicitVRLittleEndian || !bytes.Equal(got.data, f.dataset) {
		t.Errorf("stored %v in %s, %d bytes of %d", ok, got.rq.TransferSyntaxUID, len(got.data), len(f.dataset))
	}
}
