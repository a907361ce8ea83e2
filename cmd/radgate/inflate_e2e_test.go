package main

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

// TestServeDeflateBomb: two deflate bombs (Deflated Explicit VR Little
// Endian files of some 80 KiB whose private OB element inflates to 64 MiB
// of zeros) and a normal study, all stored in Orthanc and ordered at once
// through radgate serve. The bombs' orders fail with a reason naming
// pacs.max_inflate_ratio, the normal order is delivered, and radgate's peak
// RSS (VmHWM of the serve process) grows by less than 100 MB over what it
// was after a first normal order (the code before the fix: +600 MB and more:
// each bomb was inflated whole, then copied whole by the DICOM library); a
// 16×16 image of a fourth order is not scored (rejected, naming the
// engine's minimum matrix). The bombs go to an Orthanc of the test's own:
// Orthanc parses the whole file for every QIDO-RS query.
func TestServeDeflateBomb(t *testing.T) {
	begin := time.Now()
	ctx := t.Context()
	_, pacs := privateOrthanc(t)
	r := newRig(t, peers{pacs: pacs, fhir: sharedPeers(t).fhir}, nil)
	p := r.start()

	warm := makeOrders(t, 1)[0]
	r.store(ctx, warm)
	submit(t, p, warm)
	waitTerminal(t, p, time.Minute, warm)
	require.Equal(t, radgate.StateDelivered, warm.status.State, warm.status.Reason)
	base := vmHWM(t, p.cmd.Process.Pid)

	const zeros = 64 << 20
	bombs := makeOrders(t, 2)
	var wg sync.WaitGroup
	for _, b := range bombs {
		wg.Add(1)
		go func() { defer wg.Done(); b.file, b.data = "bomb.dcm", deflateBomb(t, b.data, zeros) }()
	}
	wg.Wait()
	normal := makeOrders(t, 1)[0]
	tiny := makeOrders(t, 1)[0]
	tiny.file, tiny.data = "tiny.dcm", widen(t, tiny.data, 16, 16)
	stored := time.Now()
	r.store(ctx, append(bombs, normal, tiny)...)
	storeTook := time.Since(stored)

	submit(t, p, append(bombs, normal, tiny)...)
	waitTerminal(t, p, time.Minute, append(bombs, normal, tiny)...)
	peak := vmHWM(t, p.cmd.Process.Pid)
	t.Logf("bombs of %d and %d bytes (%d MiB inflated each); VmHWM %d MB → %d MB (+%d MB); storing in Orthanc %s",
		len(bombs[0].data), len(bombs[1].data), zeros>>20, base>>20, peak>>20, (peak-base)>>20, storeTook.Round(100*time.Millisecond))

	for _, b := range bombs {
		require.Less(t, len(b.data), 256<<10)
		require.Equal(t, radgate.StateFailed, b.status.State, "bomb: %s", b.status.Reason)
		require.Contains(t, b.status.Reason, "limit pacs.max_inflate_ratio 100")
		require.Contains(t, b.status.Reason, "inflates past")
	}
	require.Equal(t, radgate.StateDelivered, normal.status.State, normal.status.Reason)
	require.Equal(t, radgate.StateRejected, tiny.status.State, tiny.status.Reason)
	require.Contains(t, tiny.status.Reason, "image 16×16 px (rows×columns) is below engine "+config.DefaultEngine+"'s minimum matrix 28×28")
	require.Less(t, peak-base, int64(100<<20), "peak RSS %d MB over the baseline %d MB", (peak-base)>>20, base>>20)
	t.Logf("bombs failed naming the limit; normal delivered; 16×16 rejected; test %s", time.Since(begin).Round(time.Second))
}

// vmHWM returns a process's peak resident set size, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// deflateBomb rewrites an explicit VR little endian Part 10 file as Deflated
// Explicit VR Little Endian, with a private creator and a private OB element
// of n zero bytes inserted after group 0008 (in tag order). The zeros are
// streamed into the compressor, never held.
func deflateBomb(t *testing.T, file []byte, n int) []byte {
	t.Helper()
	le := binary.LittleEndian
	longVR := func(vr string) bool {
		switch vr {
		case "OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UN", "UT", "UC", "UR", "SV", "UV":
			return true
		}
		return false
	}
	// next returns the end of the explicit VR element at p.
	next := func(b []byte, p int) (group uint16, end int) {
		vr := string(b[p+4 : p+6])
		if longVR(vr) {
			vl := le.Uint32(b[p+8:])
			require.NotEqual(t, uint32(0xFFFFFFFF), vl, "undefined length at byte %d", p)
			return le.Uint16(b[p:]), p + 12 + int(vl)
		}
		return le.Uint16(b[p:]), p + 8 + int(le.Uint16(b[p+6:]))
	}
	var meta []byte
	p := 132
	for le.Uint16(file[p:]) == 0x0002 {
		_, end := next(file, p)
		switch le.Uint16(file[p+2:]) {
		case 0x0000:
		case 0x0010:
			meta = append(meta, 0x02, 0, 0x10, 0, 'U', 'I')
			meta = le.AppendUint16(meta, uint16(len(inference.TSDeflatedExplicitVRLittleEndian)))
			meta = append(meta, inference.TSDeflatedExplicitVRLittleEndian...)
		default:
			meta = append(meta, file[p:end]...)
		}
		p = end
	}
	require.Equal(t, inference.TSExplicitVRLittleEndian, strings.TrimRight(string(dicomString(t, file, 0x0002, 0x0010)), "\x00"))
	ds := file[p:]
	ins := 0
	for ins < len(ds) {
		g, end := next(ds, ins)
		if g > 0x0009 {
			break
		}
		ins = end
	}
	var out bytes.Buffer
	out.Write(file[:132])
	out.Write([]byte{0x02, 0, 0, 0, 'U', 'L', 4, 0})
	out.Write(le.AppendUint32(nil, uint32(len(meta))))
	out.Write(meta)
	zw, err := flate.NewWriter(&out, flate.BestSpeed)
	require.NoError(t, err)
	write := func(b []byte) {
		_, err := zw.Write(b)
		require.NoError(t, err)
	}
	write(ds[:ins])
	write([]byte{0x09, 0, 0x10, 0, 'L', 'O', 12, 0})
	write([]byte("RADGATE TEST"))
	write(le.AppendUint32([]byte{0x09, 0, 0x00, 0x10, 'O', 'B', 0, 0}, uint32(n)))
	chunk := make([]byte, 1<<20)
	for left := n; left > 0; left -= len(chunk) {
		write(chunk[:min(len(chunk), left)])
	}
	write(ds[ins:])
	require.NoError(t, zw.Close())
	return out.Bytes()
}

// TestScoreAndEvalWarnOutsideAccepts: score and eval still score a 28²
// PneumoniaMNIST image with the 224² engine, and say that serve would not.
func TestScoreAndEvalWarnOutsideAccepts(t *testing.T) {
	src := testenv.Testdata("pneumoniamnist-val-dicom")
	want := "image 28×28 px (rows×columns) is below engine " + k224 + "'s minimum matrix 224×224"

	var stdout, stderr bytes.Buffer
	require.NoError(t, runScore(t.Context(), scoreOptions{jsonOut: true, engineID: k224, heatmapDir: t.TempDir(),
		modelsDir: filepath.Join(testenv.RepoRoot(), "models"), lib: testenv.ONNXRuntimeLib(t)},
		[]string{filepath.Join(src, "PMV0000.dcm")}, &stdout, &stderr))
	var line map[string]any
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &line), stdout.String())
	require.NotNil(t, line["probability"], "scored")
	require.Contains(t, line["warning"], want)

	dir := t.TempDir()
	labels := "file,label\n"
	for i := range 6 {
		name := fmt.Sprintf("PMV%04d.dcm", i)
		b, err := os.ReadFile(filepath.Join(src, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
		labels += fmt.Sprintf("%s,%d\n", name, map[bool]int{true: 1, false: 0}[i < 3])
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "labels.csv"), []byte(labels), 0o644))
	out, errOut, err := runEvalCmd(t, evalArgs(t, "--json", "--labels", filepath.Join(dir, "labels.csv"), "--engine", k224, dir)...)
	require.NoError(t, err, errOut)
	require.Len(t, jsonLines(t, out), 1, "scored anyway")
	require.Contains(t, errOut, "radgate: warning: engine "+k224+": 6 of 6 images are outside its intended use, scored anyway (serve would not); first: "+want)
}
