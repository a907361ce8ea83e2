package inference

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

// deflateFile turns an explicit VR little endian Part 10 file whose meta
// says Deflated Explicit VR Little Endian into a real deflated one.
func deflateFile(t testing.TB, explicit []byte) []byte {
	t.Helper()
	_, start, err := readFileMeta(explicit)
	require.NoError(t, err)
	var buf bytes.Buffer
	buf.Write(explicit[:start])
	zw, err := flate.NewWriter(&buf, flate.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(explicit[start:])
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// tiny16 is a 16×16 8-bit grey image's elements.
func tiny16() []tElem {
	px := make([]byte, 16*16)
	for i := range px {
		px[i] = byte(i)
	}
	return append(imageAttrs(16, 16, 8, 8, 0, "MONOCHROME2"), tBytes(0x7FE0, 0x0010, "OB", px))
}

// withPrivate adds a private creator and a private OB value.
func withPrivate(elems []tElem, value []byte) []tElem {
	return append(append([]tElem(nil), elems...),
		tStr(0x0009, 0x0010, "LO", "RADGATE TEST"),
		tBytes(0x0009, 0x1000, "OB", value))
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestInflateLimits(t *testing.T) {
	t.Run("ratio: a deflate bomb stops at 100 × its size", func(t *testing.T) {
		bomb := deflateFile(t, buildDICOM(TSDeflatedExplicitVRLittleEndian, withPrivate(tiny16(), make([]byte, 64<<20))...))
		require.Less(t, len(bomb), 200<<10, "64 MiB of zeros deflate to some 64 KiB")
		var img *Image
		var err error
		alloc := allocated(func() { img, err = Decode(bomb) })
		require.Nil(t, img)
		require.ErrorIs(t, err, ErrInflateLimit)
		var le *InflateLimitError
		require.ErrorAs(t, err, &le)
		require.Equal(t, "pacs.max_inflate_ratio", le.Key)
		require.Contains(t, err.Error(), "limit pacs.max_inflate_ratio 100")
		require.EqualValues(t, max(100*le.Deflated, 1<<20), le.Limit)
		require.Less(t, alloc, uint64(8<<20), "the private zeros are read past, not kept")
		_, err = ReadHeader(bomb)
		require.ErrorIs(t, err, ErrInflateLimit, "reading the header inflates within the same limits")
	})
	t.Run("absolute: incompressible bytes past max_inflated_bytes", func(t *testing.T) {
		noise := make([]byte, 3<<20)
		_, _ = rand.Read(noise)
		f := deflateFile(t, buildDICOM(TSDeflatedExplicitVRLittleEndian, withPrivate(tiny16(), noise)...))
		_, err := DecodeWith(f, DecodeOptions{MaxInflatedBytes: 2 << 20})
		var le *InflateLimitError
		require.ErrorAs(t, err, &le)
		require.Equal(t, "pacs.max_inflated_bytes", le.Key)
		require.EqualValues(t, 2<<20, le.Limit)
		require.Contains(t, err.Error(), "inflates past 2097152 bytes (limit pacs.max_inflated_bytes 2097152)")
		img, err := DecodeWith(f, DecodeOptions{MaxInflatedBytes: 4 << 20})
		require.NoError(t, err, "within a higher limit")
		require.Equal(t, 16, img.Width)
	})
	t.Run("ratio: a public element counts the same", func(t *testing.T) {
		// Zeros in a public OB (Encapsulated Document) are kept, so here
		// the limit also bounds memory.
		f := deflateFile(t, buildDICOM(TSDeflatedExplicitVRLittleEndian,
			append(tiny16(), tBytes(0x0042, 0x0011, "OB", make([]byte, 64<<20)))...))
		_, err := Decode(f)
		require.ErrorIs(t, err, ErrInflateLimit)
		_, err = DecodeWith(f, DecodeOptions{MaxInflateRatio: 1e6})
		require.NoError(t, err, "a ratio of 1e6 lets it through")
	})
	t.Run("a small file is never refused for its ratio", func(t *testing.T) {
		f := deflateFile(t, buildDICOM(TSDeflatedExplicitVRLittleEndian, withPrivate(tiny16(), make([]byte, 512<<10))...))
		require.Greater(t, (512<<10)/len(f), 100)
		img, err := Decode(f)
		require.NoError(t, err)
		require.Equal(t, 16, img.Height)
	})
	t.Run("the testdata deflated radiograph passes the defaults", func(t *testing.T) {
		img, err := DecodeFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-deflated.dcm"))
		require.NoError(t, err)
		require.Equal(t, TSDeflatedExplicitVRLittleEndian, img.Meta.TransferSyntaxUID)
		require.Equal(t, 440, img.Width)
	})
}

// undefinedPrivateSQ is a private sequence of undefined length holding an
// undefined-length item with a 1 MiB element, and a defined-length item.
func undefinedPrivateSQ() []byte {
	le := binary.LittleEndian
	var b []byte
	b = le.AppendUint16(le.AppendUint16(b, 0x0011), 0x1010)
	b = append(b, 'S', 'Q', 0, 0)
	b = le.AppendUint32(b, undefinedLength)
	b = le.AppendUint32(le.AppendUint16(le.AppendUint16(b, 0xFFFE), 0xE000), undefinedLength)
	b = le.AppendUint16(le.AppendUint16(b, 0x0011), 0x1011)
	b = append(b, 'O', 'B', 0, 0)
	b = le.AppendUint32(b, 1<<20)
	b = append(b, make([]byte, 1<<20)...)
	b = le.AppendUint32(le.AppendUint16(le.AppendUint16(b, 0xFFFE), 0xE00D), 0)
	b = le.AppendUint32(le.AppendUint16(le.AppendUint16(b, 0xFFFE), 0xE000), 10)
	b = le.AppendUint16(le.AppendUint16(b, 0x0011), 0x1012)
	b = append(b, 'L', 'O', 2, 0, 'x', ' ')
	return le.AppendUint32(le.AppendUint16(le.AppendUint16(b, 0xFFFE), 0xE0DD), 0)
}

func TestPrivateElementsAreNotKept(t *testing.T) {
	plain := buildDICOM(TSExplicitVRLittleEndian, tiny16()...)
	want, err := Decode(plain)
	require.NoError(t, err)

	deflatedMeta := buildDICOM(TSDeflatedExplicitVRLittleEndian, withPrivate(tiny16(), make([]byte, 64<<20))...)
	deflated := deflateFile(t, append(deflatedMeta, undefinedPrivateSQ()...))
	native := append(buildDICOM(TSExplicitVRLittleEndian, withPrivate(tiny16(), make([]byte, 64<<20))...), undefinedPrivateSQ()...)
	for _, tc := range []struct {
		name string
		data []byte
	}{{"deflated", deflated}, {"native", native}} {
		t.Run(tc.name, func(t *testing.T) {
			var img *Image
			alloc := allocated(func() { img, err = DecodeWith(tc.data, DecodeOptions{MaxInflateRatio: 1e6}) })
			require.NoError(t, err)
			require.Less(t, alloc, uint64(8<<20), "64 MiB of private values are not copied")
			require.Equal(t, want.Plane(), img.Plane())
			require.Equal(t, "DX", img.Meta.Modality)
		})
	}
	t.Run("a truncated private value is malformed", func(t *testing.T) {
		bad := deflateFile(t, deflatedMeta[:len(deflatedMeta)-1000])
		_, err := DecodeWith(bad, DecodeOptions{MaxInflateRatio: 1e6})
		require.ErrorIs(t, err, ErrMalformed)
		require.Contains(t, err.Error(), "element (0009,1000): truncated inside an element")
	})
}
