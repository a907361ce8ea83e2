package dimse

import (
	"context"
	"encoding/binary"

	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
)

// lockedBuffer is testenv's log sink, read while servers write.
type lockedBuffer = testenv.LogBuffer

// stored is what memStore's handler got for one instance.
type stored struct {
	rq   StoreRequest
	data []byte
	err  error
}

// memStore keeps every data set it reads completely, and records the
// failures.
type memStore struct {
	mu     sync.Mutex
	ok     map[string]stored
	failed []stored
	// before, when set, runs before the data set is read.
	before func(rq *StoreRequest)
}

func (m *memStore) Store(ctx context.Context, rq *StoreRequest, data io.Reader) Status {
	if m.before != nil {
		m.before(rq)
	}
	b, err := io.ReadAll(data)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.failed = append(m.failed, stored{rq: *rq, err: err})
		return StatusOutOfResources
	}
	if m.ok == nil {
		m.ok = map[string]stored{}
	}
	m.ok[rq.SOPInstanceUID] = stored{rq: *rq, data: b}
	return StatusSuccess
}

func (m *memStore) get(uid string) (stored, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.ok[uid]
	return s, ok
}

func (m *memStore) failures() []stored {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]stored(nil), m.failed...)
}

// startServer serves s on a loopback port until the test ends; it returns
// the address and the log.
func startServer(t testing.TB, s *Server) (string, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if s.Addr == "" {
		s.Addr = "127.0.0.1:0"
	}
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), logs
}

// part10 is a test file split into its meta information and data set.
type part10 struct {
	path                  string
	sopClass, sopInstance string
	transferSyntax        string
	dataset               []byte
}

// readPart10 splits a DICOM file after its file meta information.
func readPart10(t testing.TB, path string) part10 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 144 || string(b[128:132]) != "DICM" {
		t.Fatalf("%s: not a DICOM file", path)
	}
	f := part10{path: path}
	off := 132
	end := -1
	for off < len(b) && (end < 0 || off < end) {
		grp, el := binary.LittleEndian.Uint16(b[off:]), binary.LittleEndian.Uint16(b[off+2:])
		if grp != 2 {
			break
		}
		vr := string(b[off+4 : off+6])
		var n, h int
		switch vr {
		case "OB", "OW", "UN", "SQ", "UT", "UC", "UR":
			n, h = int(binary.LittleEndian.Uint32(b[off+8:])), 12
		default:
			n, h = int(binary.LittleEndian.Uint16(b[off+6:])), 8
		}
		v := strings.TrimRight(string(b[off+h:off+h+n]), "\x00 ")
		switch el {
		case 0x0000:
			end = off + h + n + int(binary.LittleEndian.Uint32(b[off+h:]))
		case 0x0002:
			f.sopClass = v
		case 0x0003:
			f.sopInstance = v
		case 0x0010:
			f.transferSyntax = v
		}
		off += h + n
	}
	f.dataset = b[off:]
	return f
}

// cxrFiles returns every DICOM file of testdata/cxr-dicom.
func cxrFiles(t testing.TB) []part10 {
	t.Helper()
	paths, err := filepath.Glob(testenv.Testdata("cxr-dicom", "*.dcm"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata/cxr-dicom files: %v", err)
	}
	var out []part10
	for _, p := range paths {
		out = append(out, readPart10(t, p))
	}
	return out
}

// requireTool returns the path of a dcmtk tool, or skips (fails under
// RADGATE_REQUIRE_PEERS=1).
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testenv.Required() {
			t.Fatalf("%s not found (install dcmtk): %v", name, err)
		}
		t.Skipf("%s not found (install dcmtk)", name)
	}
	return p
}
