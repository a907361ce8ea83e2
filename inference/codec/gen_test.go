package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// update regenerates testdata/small (see TestGenerateSmall).
var update = flag.Bool("update", false, "regenerate testdata/small with DCMTK and OpenJPEG's tools")

const smallDir = "testdata/small"

// smallCase is one entry of testdata/small/manifest.json: an encoded frame
// (Name.bin), its attributes, and the words it must decode to (Ref, a file
// of native little-endian words) within Tolerance (0: exactly).
type smallCase struct {
	Name        string
	Made        string // how it was made
	TS          string
	Rows, Cols  int
	SPP, BA, BS int
	PR          int
	Photometric string
	Ref         string
	Tolerance   int
	WantPI      string // PhotometricInterpretation Decode must report
	WantNear    int    // JPEG-LS NEAR
}

func loadSmall(tb testing.TB) []smallCase {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(smallDir, "manifest.json"))
	require.NoError(tb, err)
	var cases []smallCase
	require.NoError(tb, json.Unmarshal(b, &cases))
	require.NotEmpty(tb, cases)
	return cases
}

func (c smallCase) frame(tb testing.TB) Frame {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(smallDir, c.Name+".bin"))
	require.NoError(tb, err)
	return Frame{
		TransferSyntaxUID: c.TS, Data: data,
		Rows: c.Rows, Columns: c.Cols, SamplesPerPixel: c.SPP,
		BitsAllocated: c.BA, BitsStored: c.BS, PixelRepresentation: c.PR,
		PhotometricInterpretation: c.Photometric,
	}
}

// TestGenerateSmall rebuilds testdata/small from crops of the 10-bit chest
// radiograph (cr-chest-mono1-10bit-explicit-le.dcm) and a synthetic RGB
// image. It runs only with -update and needs DCMTK (dump2dcm, dcmcjpeg,
// dcmdjpeg, dcmcjpls, dcmdjpls, dcmcrle, dcmdrle) and OpenJPEG's tools
// (opj_compress, opj_decompress: Debian libopenjp2-tools):
//
//	go test ./inference/codec -run TestGenerateSmall -update
//
// The references of lossy codecs are what DCMTK (or opj_decompress)
// decodes; those of lossless codecs are the source pixels, and the
// generator checks that DCMTK agrees.
func TestGenerateSmall(t *testing.T) {
	if !*update {
		// Without -update: check that every file the manifest names is
		// there (a skip would fail the project's test command).
		for _, c := range loadSmall(t) {
			for _, f := range []string{c.Name + ".bin", c.Ref} {
				_, err := os.Stat(filepath.Join(smallDir, f))
				require.NoError(t, err, "run: go test ./inference/codec -run TestGenerateSmall -update")
			}
		}
		return
	}
	tmp := t.TempDir()
	orig := loadFixture(t, "cr-chest-mono1-10bit-explicit-le.dcm")
	ow := nativeWords(orig.Native)
	crop := func(x0, y0, w, h int, f func(v uint32, x, y int) uint32) []uint32 {
		out := make([]uint32, 0, w*h)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				out = append(out, f(ow[(y0+y)*orig.Columns+x0+x], x, y))
			}
		}
		return out
	}
	id := func(v uint32, _, _ int) uint32 { return v }
	type source struct {
		name        string
		w, h        int
		spp, ba, bs int
		pr          int
		pi          string
		words       []uint32
	}
	rgb := make([]uint32, 0, 64*48*3)
	for i, v := range crop(200, 180, 64, 48, id) {
		x, y := i%64, i/64
		rgb = append(rgb, v>>2, 255-(v>>2), uint32(x*4+y*5)&255)
	}
	rgbOdd := make([]uint32, 0, 61*37*3)
	for i, v := range crop(120, 250, 61, 37, id) {
		x, y := i%61, i/61
		rgbOdd = append(rgbOdd, v>>2, uint32(x*4)&255, 255-uint32(y*6)&255)
	}
	sources := map[string]source{
		"rgbodd": {"rgbodd", 61, 37, 3, 8, 8, 0, "RGB", rgbOdd},
		"mono10": {"mono10", 64, 48, 1, 16, 10, 0, "MONOCHROME2", crop(200, 180, 64, 48, id)},
		"odd10":  {"odd10", 61, 37, 1, 16, 10, 0, "MONOCHROME2", crop(120, 250, 61, 37, id)},
		"mono8":  {"mono8", 64, 48, 1, 8, 8, 0, "MONOCHROME2", crop(200, 180, 64, 48, func(v uint32, _, _ int) uint32 { return v >> 2 })},
		"signed12": {"signed12", 64, 48, 1, 16, 12, 1, "MONOCHROME2", crop(200, 180, 64, 48, func(v uint32, x, _ int) uint32 {
			return uint32(uint16(int16(int(v)*4 - 2048 + x)))
		})},
		"rgb8": {"rgb8", 64, 48, 3, 8, 8, 0, "RGB", rgb},
		"mono16": {"mono16", 64, 48, 1, 16, 16, 0, "MONOCHROME2", crop(200, 180, 64, 48, func(v uint32, x, y int) uint32 {
			return min(65535, v*64+uint32((x*7+y*13)%64)) // the full 16-bit range
		})},
	}
	wordBytes := func(s source) []byte {
		var buf bytes.Buffer
		for _, v := range s.words {
			if s.ba == 8 {
				buf.WriteByte(byte(v))
			} else {
				_ = binary.Write(&buf, binary.LittleEndian, uint16(v))
			}
		}
		return buf.Bytes()
	}
	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		require.NoError(t, err, "%s %v: %s", name, args, out)
	}
	native := map[string]string{}
	require.NoError(t, os.MkdirAll(smallDir, 0o755))
	for _, s := range sources {
		raw := filepath.Join(tmp, s.name+".raw")
		require.NoError(t, os.WriteFile(raw, wordBytes(s), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(smallDir, s.name+".raw"), wordBytes(s), 0o644))
		vr := "OW"
		if s.ba == 8 {
			vr = "OB"
		}
		dump := fmt.Sprintf(`(0008,0016) UI =SecondaryCaptureImageStorage
(0008,0018) UI [1.2.826.0.1.3680043.8.498.%d]
(0008,0060) CS [OT]
(0028,0002) US %d
(0028,0004) CS [%s]
%s(0028,0010) US %d
(0028,0011) US %d
(0028,0100) US %d
(0028,0101) US %d
(0028,0102) US %d
(0028,0103) US %d
(7fe0,0010) %s =%s
`, len(s.name)*1000+s.w, s.spp, s.pi, map[bool]string{true: "(0028,0006) US 0\n"}[s.spp == 3],
			s.h, s.w, s.ba, s.bs, s.bs-1, s.pr, vr, raw)
		dp := filepath.Join(tmp, s.name+".dump")
		require.NoError(t, os.WriteFile(dp, []byte(dump), 0o644))
		native[s.name] = filepath.Join(tmp, s.name+".dcm")
		run("dump2dcm", "-g", "+te", dp, native[s.name])
	}

	type variant struct {
		name, src string
		tool      string
		args      []string
		dec       string // DCMTK decoder for the reference; "" = the source is the reference
		tolerance int
		pi        string
		near      int
	}
	variants := []variant{
		{"mono10-jpeg-lossless-sv1", "mono10", "dcmcjpeg", []string{"+e1"}, "", 0, "", 0},
		{"mono10-jpeg-lossless-p2", "mono10", "dcmcjpeg", []string{"+el", "+sv", "2"}, "", 0, "", 0},
		{"mono10-jpeg-lossless-p3", "mono10", "dcmcjpeg", []string{"+el", "+sv", "3"}, "", 0, "", 0},
		{"mono10-jpeg-lossless-p4", "mono10", "dcmcjpeg", []string{"+el", "+sv", "4"}, "", 0, "", 0},
		{"mono10-jpeg-lossless-p5", "mono10", "dcmcjpeg", []string{"+el", "+sv", "5"}, "", 0, "", 0},
		{"mono10-jpeg-lossless-p6", "mono10", "dcmcjpeg", []string{"+el", "+sv", "6"}, "", 0, "", 0},
		{"mono10-jpeg-lossless-p7", "mono10", "dcmcjpeg", []string{"+el", "+sv", "7"}, "", 0, "", 0},
		{"mono10-jpeg-lossless-p6-pt2", "mono10", "dcmcjpeg", []string{"+el", "+sv", "6", "+pt", "2"}, "dcmdjpeg", 0, "", 0},
		{"mono10-jpeg-extended-12bit", "mono10", "dcmcjpeg", []string{"+ee"}, "dcmdjpeg", 0, "", 0},
		{"mono10-jpeg-extended-8bit", "mono10", "dcmcjpeg", []string{"+ee", "+be"}, "dcmdjpeg", 0, "", 0},
		{"mono10-jpeg-progressive-8bit", "mono10", "dcmcjpeg", []string{"+ep", "+be"}, "dcmdjpeg", 2, "", 0},
		{"mono10-jpegls-lossless", "mono10", "dcmcjpls", []string{"+el"}, "", 0, "", 0},
		{"mono10-jpegls-near3", "mono10", "dcmcjpls", []string{"+en", "+md", "3"}, "dcmdjpls", 0, "", 3},
		{"mono10-rle", "mono10", "dcmcrle", nil, "", 0, "", 0},
		{"odd10-jpeg-lossless-sv1", "odd10", "dcmcjpeg", []string{"+e1"}, "", 0, "", 0},
		{"odd10-jpeg-extended-12bit", "odd10", "dcmcjpeg", []string{"+ee"}, "dcmdjpeg", 0, "", 0},
		{"odd10-jpegls-lossless", "odd10", "dcmcjpls", []string{"+el"}, "", 0, "", 0},
		{"odd10-rle", "odd10", "dcmcrle", nil, "", 0, "", 0},
		{"mono8-jpeg-baseline", "mono8", "dcmcjpeg", []string{"+eb"}, "dcmdjpeg", 0, "", 0},
		{"mono8-jpegls-lossless", "mono8", "dcmcjpls", []string{"+el"}, "", 0, "", 0},
		{"mono8-rle", "mono8", "dcmcrle", nil, "", 0, "", 0},
		{"signed12-rle", "signed12", "dcmcrle", nil, "", 0, "", 0},
		{"signed12-jpeg-lossless-sv1", "signed12", "dcmcjpeg", []string{"+e1"}, "", 0, "", 0},
		{"signed12-jpegls-lossless", "signed12", "dcmcjpls", []string{"+el"}, "", 0, "", 0},
		{"rgb8-jpeg-lossless-sv1", "rgb8", "dcmcjpeg", []string{"+e1"}, "", 0, "", 0},
		{"rgb8-jpeg-baseline-422", "rgb8", "dcmcjpeg", []string{"+eb"}, "dcmdjpeg", 0, "RGB", 0},
		{"rgb8-jpeg-baseline-444", "rgb8", "dcmcjpeg", []string{"+eb", "+s4"}, "dcmdjpeg", 0, "RGB", 0},
		{"rgb8-jpeg-baseline-411", "rgb8", "dcmcjpeg", []string{"+eb", "+n1"}, "dcmdjpeg", 0, "RGB", 0},
		{"rgb8-jpegls-ilv-line", "rgb8", "dcmcjpls", []string{"+el", "+il"}, "", 0, "", 0},
		{"rgb8-jpegls-ilv-sample", "rgb8", "dcmcjpls", []string{"+el", "+is"}, "", 0, "", 0},
		{"rgb8-jpegls-ilv-none", "rgb8", "dcmcjpls", []string{"+el", "+in"}, "", 0, "", 0},
		{"rgb8-rle", "rgb8", "dcmcrle", nil, "", 0, "", 0},
		{"mono16-jpeg-lossless-sv1", "mono16", "dcmcjpeg", []string{"+e1"}, "", 0, "", 0},
		{"mono16-jpegls-lossless", "mono16", "dcmcjpls", []string{"+el"}, "", 0, "", 0},
		{"mono16-jpegls-near10", "mono16", "dcmcjpls", []string{"+en", "+md", "10"}, "dcmdjpls", 0, "", 10},
		{"mono16-rle", "mono16", "dcmcrle", nil, "", 0, "", 0},
	}
	var cases []smallCase
	for _, v := range variants {
		s := sources[v.src]
		enc := filepath.Join(tmp, v.name+".dcm")
		run(v.tool, append(append([]string{}, v.args...), native[v.src], enc)...)
		fx, err := parseFixture(enc)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(smallDir, v.name+".bin"), fx.Data, 0o644))
		made := strings.TrimSpace(v.tool + " " + strings.Join(v.args, " ") + " (" + v.src + ")")
		if fx.TransferSyntaxUID == "1.2.840.10008.1.2.4.55" {
			// DCMTK labels it with the retired progressive syntax; devices
			// that write progressive streams label them 4.51 or 4.50.
			fx.TransferSyntaxUID = JPEGExtended
			made += ", relabelled from 1.2.840.10008.1.2.4.55 to 4.51"
		}
		c := smallCase{
			Name: v.name, Made: made,
			TS: fx.TransferSyntaxUID, Rows: fx.Rows, Cols: fx.Columns, SPP: fx.SamplesPerPixel,
			BA: fx.BitsAllocated, BS: fx.BitsStored, PR: fx.PixelRepresentation, Photometric: fx.Photometric,
			Ref: s.name + ".raw", Tolerance: v.tolerance, WantPI: v.pi, WantNear: v.near,
		}
		// What DCMTK decodes, colour by pixel.
		decTool := map[string]string{"dcmcjpeg": "dcmdjpeg", "dcmcjpls": "dcmdjpls", "dcmcrle": "dcmdrle"}[v.tool]
		decoded := filepath.Join(tmp, v.name+"-dec.dcm")
		args := []string{enc, decoded}
		if s.spp == 3 && decTool != "dcmdrle" {
			args = append([]string{"+px"}, args...)
		}
		run(decTool, args...)
		dfx, err := parseFixture(decoded)
		require.NoError(t, err)
		if v.dec == "" {
			require.Equal(t, wordBytes(s), dfx.Native, "%s: DCMTK does not decode it to the source", v.name)
		} else {
			c.Ref = v.name + ".ref"
			require.NoError(t, os.WriteFile(filepath.Join(smallDir, c.Ref), dfx.Native, 0o644))
			require.Equal(t, c.BA, dfx.BitsAllocated, "%s: Bits Allocated of the encoded and decoded files", v.name)
		}
		cases = append(cases, c)
	}

	// JPEG 2000 with opj_compress from raw little-endian input.
	type j2k struct {
		name, src string
		args      []string
		lossy     bool
		pi        string
	}
	for _, v := range []j2k{
		{"mono10-j2k-lossless", "mono10", nil, false, ""},
		{"odd10-j2k-lossless", "odd10", nil, false, ""},
		{"mono10-j2k-lossy", "mono10", []string{"-r", "8", "-I"}, true, ""},
		{"signed12-j2k-lossless", "signed12", nil, false, ""},
		{"mono8-j2k-lossless", "mono8", nil, false, ""},
		{"mono16-j2k-lossless", "mono16", nil, false, ""},
		{"rgb8-j2k-lossless-mct", "rgb8", []string{"-mct", "1"}, false, "RGB"},
		{"rgb8-j2k-lossy-ict", "rgb8", []string{"-r", "10", "-I", "-mct", "1"}, true, "RGB"},
	} {
		s := sources[v.src]
		sign := "u"
		if s.pr == 1 {
			sign = "s"
		}
		// opj_compress reads planar raw data.
		var planar bytes.Buffer
		for c := 0; c < s.spp; c++ {
			for i := c; i < len(s.words); i += s.spp {
				if s.ba == 8 {
					planar.WriteByte(byte(s.words[i]))
				} else {
					_ = binary.Write(&planar, binary.LittleEndian, uint16(s.words[i]))
				}
			}
		}
		in := filepath.Join(tmp, v.name+".rawl")
		require.NoError(t, os.WriteFile(in, planar.Bytes(), 0o644))
		out := filepath.Join(tmp, v.name+".j2k")
		run("opj_compress", append([]string{"-i", in, "-o", out, "-F",
			fmt.Sprintf("%d,%d,%d,%d,%s", s.w, s.h, s.spp, s.bs, sign)}, v.args...)...)
		cs, err := os.ReadFile(out)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(smallDir, v.name+".bin"), cs, 0o644))
		ts := JPEG2000Lossless
		if v.lossy {
			ts = JPEG2000
		}
		pi := s.pi
		if s.spp == 3 {
			pi = map[bool]string{false: "YBR_RCT", true: "YBR_ICT"}[v.lossy]
		}
		c := smallCase{
			Name: v.name, Made: strings.TrimSpace("opj_compress " + strings.Join(v.args, " ") + " (" + v.src + ")"),
			TS: ts, Rows: s.h, Cols: s.w, SPP: s.spp, BA: s.ba, BS: s.bs, PR: s.pr, Photometric: pi,
			Ref: s.name + ".raw", WantPI: v.pi,
		}
		if v.lossy {
			// The reference is what opj_decompress makes of it.
			dec := filepath.Join(tmp, v.name+".out.rawl")
			run("opj_decompress", "-i", out, "-o", dec)
			b, err := os.ReadFile(dec)
			require.NoError(t, err)
			bpw := (s.bs + 7) / 8
			n := s.w * s.h
			var ref bytes.Buffer
			for i := 0; i < n; i++ {
				for k := 0; k < s.spp; k++ {
					j := (k*n + i) * bpw
					if s.ba == 8 {
						ref.WriteByte(b[j])
					} else {
						ref.Write(b[j : j+2])
					}
				}
			}
			c.Ref = v.name + ".ref"
			require.NoError(t, os.WriteFile(filepath.Join(smallDir, c.Ref), ref.Bytes(), 0o644))
		}
		cases = append(cases, c)
	}
	// libjpeg-turbo's cjpeg for what DCMTK does not write: restart
	// intervals (in MCU rows and in MCUs that end mid-row) and 4:2:0 / 4:2:2
	// colour with odd sizes. The reference is djpeg's output (islow IDCT,
	// fancy upsampling).
	type cj struct {
		name, src string
		args      []string
		pi        string
	}
	for _, v := range []cj{
		{"mono8-jpeg-restart-rows", "mono8", []string{"-grayscale", "-restart", "1"}, ""},
		{"mono8-jpeg-restart-mcus", "mono8", []string{"-grayscale", "-restart", "3B"}, ""},
		{"rgb8-jpeg-420-restart", "rgb8", []string{"-sample", "2x2,1x1,1x1", "-restart", "5B"}, "RGB"},
		{"rgbodd-jpeg-420", "rgbodd", []string{"-sample", "2x2,1x1,1x1"}, "RGB"},
		{"rgbodd-jpeg-422", "rgbodd", []string{"-sample", "2x1,1x1,1x1"}, "RGB"},
	} {
		s := sources[v.src]
		magic := "P5"
		if s.spp == 3 {
			magic = "P6"
		}
		pnm := append([]byte(fmt.Sprintf("%s\n%d %d\n255\n", magic, s.w, s.h)), wordBytes(s)...)
		in := filepath.Join(tmp, v.name+".pnm")
		require.NoError(t, os.WriteFile(in, pnm, 0o644))
		out := filepath.Join(tmp, v.name+".jpg")
		run("cjpeg", append(append([]string{}, v.args...), "-outfile", out, in)...)
		jpg, err := os.ReadFile(out)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(smallDir, v.name+".bin"), jpg, 0o644))
		dec := filepath.Join(tmp, v.name+".out.pnm")
		run("djpeg", "-pnm", "-outfile", dec, out)
		d, err := os.ReadFile(dec)
		require.NoError(t, err)
		hdr := fmt.Sprintf("%s\n%d %d\n255\n", magic, s.w, s.h)
		require.True(t, bytes.HasPrefix(d, []byte(hdr)), "%s: djpeg wrote %q", v.name, d[:16])
		ref := v.name + ".ref"
		require.NoError(t, os.WriteFile(filepath.Join(smallDir, ref), d[len(hdr):], 0o644))
		pi := "MONOCHROME2"
		if s.spp == 3 {
			pi = "YBR_FULL_422"
		}
		cases = append(cases, smallCase{
			Name: v.name, Made: "cjpeg " + strings.Join(v.args, " ") + " (" + v.src + ")",
			TS: JPEGBaseline, Rows: s.h, Cols: s.w, SPP: s.spp, BA: 8, BS: 8, Photometric: pi,
			Ref: ref, WantPI: v.pi,
		})
	}

	b, err := json.MarshalIndent(cases, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(smallDir, "manifest.json"), append(b, '\n'), 0o644))
}
