package codec

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func smallJ2K(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(smallDir, "mono10-j2k-lossless.bin"))
	require.NoError(t, err)
	return b
}

func j2kFrame(data []byte) Frame {
	return Frame{TransferSyntaxUID: JPEG2000Lossless, Data: data, Rows: 48, Columns: 64,
		SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 10}
}

func TestJ2KHeader(t *testing.T) {
	needSupport(t, JPEG2000Lossless)
	cs := smallJ2K(t)
	h, err := parseJ2KHeader(cs)
	require.NoError(t, err)
	require.Equal(t, &j2kHeader{width: 64, height: 48, comps: 1, prec: 10, tiles: 1}, h)

	// SIZ field offsets from the start of the codestream.
	const (
		xsiz  = 8
		ysiz  = 12
		xtsiz = 24
		csiz  = 40
		ssiz  = 42
		xrsiz = 43
	)
	put32 := func(b []byte, at int, v uint32) { binary.BigEndian.PutUint32(b[at:], v) }
	for _, tc := range []struct {
		name string
		edit func([]byte)
		want error
		msg  string
	}{
		{"width disagrees", func(b []byte) { put32(b, xsiz, 65) }, ErrCorrupt, "JPEG 2000 image is 65 × 48, the data set says 64 × 48"},
		{"empty image area", func(b []byte) { put32(b, ysiz, 0) }, ErrCorrupt, "image area"},
		{"zero tile width", func(b []byte) { put32(b, xtsiz, 0) }, ErrCorrupt, "image area"},
		{"a tile per pixel", func(b []byte) { put32(b, xsiz, 64000); put32(b, ysiz, 48000); put32(b, xtsiz, 1); put32(b, xtsiz+4, 1) }, ErrCorrupt, "tiles (at most 65535 allowed)"},
		{"components disagree", func(b []byte) { b[csiz+1] = 3 }, ErrCorrupt, "SIZ segment of 41 bytes for 3 components"},
		{"precision above bits allocated", func(b []byte) { b[ssiz] = 16 }, ErrCorrupt, "precision 17 bits does not fit Bits Allocated 16"},
		{"subsampled", func(b []byte) { b[xrsiz] = 2 }, ErrUnsupported, "subsampled"},
		{"no SIZ", func(b []byte) { b[3] = 0x52 }, ErrCorrupt, "neither a J2K codestream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(cs)
			tc.edit(b)
			_, err := Decode(j2kFrame(b))
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
			require.ErrorContains(t, err, "JPEG 2000 Lossless (1.2.840.10008.1.2.4.90)")
		})
	}
}

// TestJP2Wrapper: a JP2 file (which DICOM does not allow, but some encoders
// write) is decoded from its codestream box.
func TestJP2Wrapper(t *testing.T) {
	needSupport(t, JPEG2000Lossless)
	cs := smallJ2K(t)
	box := func(typ string, payload []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(8+len(payload)))
		return append(append(b, typ...), payload...)
	}
	jp2 := append(bytes.Clone(j2kSignature), box("ftyp", []byte("jp2 \x00\x00\x00\x00jp2 "))...)
	jp2 = append(jp2, box("jp2c", cs)...)
	want, err := Decode(j2kFrame(cs))
	require.NoError(t, err)
	got, err := Decode(j2kFrame(jp2))
	require.NoError(t, err)
	require.Equal(t, want.Data, got.Data)

	// A codestream box that runs past the end, or none at all.
	_, err = Decode(j2kFrame(jp2[:len(jp2)-10]))
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = Decode(j2kFrame(append(bytes.Clone(j2kSignature), box("ftyp", []byte("jp2 "))...)))
	require.ErrorContains(t, err, "without a codestream box")
}

// TestJ2KTruncated: OpenJPEG runs in strict mode, so a truncated
// codestream is an error, not a partly grey image.
func TestJ2KTruncated(t *testing.T) {
	needSupport(t, JPEG2000Lossless)
	for _, name := range []string{"mono10-j2k-lossless", "mono10-j2k-lossy", "rgb8-j2k-lossless-mct"} {
		for _, c := range loadSmall(t) {
			if c.Name != name {
				continue
			}
			f := c.frame(t)
			n := len(f.Data)
			for _, cut := range []int{n - 3, n - 50, n * 3 / 4, n / 2, 200, 60} {
				g := f
				g.Data = f.Data[:cut]
				_, err := Decode(g)
				require.ErrorIs(t, err, ErrCorrupt, "%s cut at %d of %d", name, cut, n)
			}
		}
	}
}
