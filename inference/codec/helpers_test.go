package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// fixtureDir holds the real radiographs of testdata/SOURCES.md.
var fixtureDir = filepath.Join("..", "..", "testdata", "cxr-dicom")

// fixture is a parsed test file: its Frame (for an encapsulated file, all
// fragments concatenated: every fixture is single-frame) or, for a native
// file, its pixel words as little-endian bytes.
type fixture struct {
	Frame
	Photometric string
	Native      []byte // native files only
}

var (
	fixtureMu    sync.Mutex
	fixtureCache = map[string]*fixture{}
)

// loadFixture parses testdata/cxr-dicom/name with suyashkumar/dicom.
func loadFixture(tb testing.TB, name string) *fixture {
	tb.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if fx, ok := fixtureCache[name]; ok {
		return fx
	}
	fx, err := parseFixture(filepath.Join(fixtureDir, name))
	require.NoError(tb, err, name)
	fixtureCache[name] = fx
	return fx
}

func parseFixture(path string) (*fixture, error) {
	ds, err := dicom.ParseFile(path, nil)
	if err != nil {
		return nil, err
	}
	str := func(t tag.Tag) string {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return ""
		}
		if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
			return v[0]
		}
		return ""
	}
	num := func(t tag.Tag) int {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return -1
		}
		if v, ok := e.Value.GetValue().([]int); ok && len(v) > 0 {
			return v[0]
		}
		return -1
	}
	fx := &fixture{
		Frame: Frame{
			TransferSyntaxUID:   str(tag.TransferSyntaxUID),
			Rows:                num(tag.Rows),
			Columns:             num(tag.Columns),
			SamplesPerPixel:     num(tag.SamplesPerPixel),
			BitsAllocated:       num(tag.BitsAllocated),
			BitsStored:          num(tag.BitsStored),
			PixelRepresentation: num(tag.PixelRepresentation),
		},
		Photometric: str(tag.PhotometricInterpretation),
	}
	fx.PhotometricInterpretation = fx.Photometric
	pe, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return nil, err
	}
	info := dicom.MustGetPixelDataInfo(pe.Value)
	if info.IsEncapsulated {
		// suyashkumar/dicom returns one entry per fragment; every fixture
		// is single-frame, so the frame is all of them.
		var frags [][]byte
		for _, f := range info.Frames {
			frags = append(frags, f.EncapsulatedData.Data)
		}
		fx.Data = bytes.Join(frags, nil)
		return fx, nil
	}
	if len(info.Frames) != 1 {
		return nil, fmt.Errorf("%s: %d native frames", path, len(info.Frames))
	}
	nf, err := info.Frames[0].GetNativeFrame()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	switch raw := nf.RawDataSlice().(type) {
	case []uint16:
		_ = binary.Write(&buf, binary.LittleEndian, raw)
	case []uint8:
		buf.Write(raw)
	case []int16:
		_ = binary.Write(&buf, binary.LittleEndian, raw)
	default:
		return nil, fmt.Errorf("%s: native frame of %T", path, raw)
	}
	fx.Native = buf.Bytes()
	return fx, nil
}

// words returns the decoded samples as unsigned words.
func words(px *Pixels) []uint32 {
	w := make([]uint32, px.Len())
	for i := range w {
		w[i] = px.Word(i)
	}
	return w
}

// nativeWords returns little-endian 16-bit native pixel data as words.
func nativeWords(b []byte) []uint32 {
	w := make([]uint32, len(b)/2)
	for i := range w {
		w[i] = uint32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return w
}
