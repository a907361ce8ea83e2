package codec

import (
	"errors"
	"testing"
)

// The tests run without Decode's panic net, so that a panic fails them.
func init() { catchPanics = false }

// Fuzz targets, one per decoder, seeded with the small frames of
// testdata/small and a frame of the real 440² radiograph. Run one at a
// time, e.g.
//
//	go test ./inference/codec -run '^$' -fuzz '^FuzzJPEGLS$' -fuzztime 60s
//
// Crashers go to testdata/fuzz/<target>/ and are replayed by plain
// `go test`. Each input decodes under a 4 MiB limit; a decoded frame must
// have the promised size, and a failure must be a *DecodeError wrapping one
// of the package's sentinel errors.

func FuzzRLE(f *testing.F) {
	fuzzCodec(f, []string{RLELossless}, "cr-chest-mono1-10bit-rle.dcm")
}

func FuzzJPEGLossless(f *testing.F) {
	fuzzCodec(f, []string{JPEGLossless, JPEGLosslessSV1}, "cr-chest-mono1-10bit-jpeg-lossless-sv1.dcm")
}

func FuzzJPEGDCT(f *testing.F) {
	fuzzCodec(f, []string{JPEGBaseline, JPEGExtended}, "cr-chest-mono1-10bit-jpeg-extended-12bit.dcm")
}

func FuzzJPEGLS(f *testing.F) {
	fuzzCodec(f, []string{JPEGLSLossless, JPEGLSNearLossless}, "cr-chest-mono1-10bit-jpegls-near-lossless.dcm")
}

func FuzzJPEG2000(f *testing.F) {
	if !haveOpenJPEG {
		f.Skip("JPEG 2000 needs cgo")
	}
	fuzzCodec(f, []string{JPEG2000Lossless, JPEG2000}, "cr-chest-mono1-10bit-jpeg2000-lossless.dcm")
}

// fuzzCodec seeds f with every small frame of the given syntaxes and one
// real frame, and fuzzes the frame's bytes and attributes. The first
// syntax is the one the input is decoded as.
func fuzzCodec(f *testing.F, syntaxes []string, real string) {
	add := func(fr Frame) {
		f.Add(fr.Data, uint16(fr.Rows), uint16(fr.Columns), uint8(fr.SamplesPerPixel),
			uint8(fr.BitsAllocated), uint8(fr.BitsStored), uint8(fr.PixelRepresentation))
	}
	for _, c := range loadSmall(f) {
		for _, ts := range syntaxes {
			if c.TS == ts {
				add(c.frame(f))
			}
		}
	}
	add(loadFixture(f, real).Frame)
	dec := Decoder{MaxBytes: 4 << 20}
	f.Fuzz(func(t *testing.T, data []byte, rows, cols uint16, spp, ba, bs, pr uint8) {
		fr := Frame{TransferSyntaxUID: syntaxes[0], Data: data, Rows: int(rows), Columns: int(cols),
			SamplesPerPixel: int(spp), BitsAllocated: int(ba), BitsStored: int(bs), PixelRepresentation: int(pr)}
		px, err := dec.Decode(fr)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.TransferSyntaxUID != fr.TransferSyntaxUID {
				t.Fatalf("error is not a *DecodeError for %s: %v", fr.TransferSyntaxUID, err)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrInvalidFrame) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if px.Rows != fr.Rows || px.Columns != fr.Columns || px.SamplesPerPixel != fr.SamplesPerPixel ||
			px.BitsAllocated != fr.BitsAllocated || len(px.Data) != fr.Rows*fr.Columns*fr.SamplesPerPixel*fr.BitsAllocated/8 {
			t.Fatalf("decoded %d × %d × %d of %d bits in %d bytes for frame %d × %d × %d of %d bits",
				px.Columns, px.Rows, px.SamplesPerPixel, px.BitsAllocated, len(px.Data),
				fr.Columns, fr.Rows, fr.SamplesPerPixel, fr.BitsAllocated)
		}
	})
}

// FuzzJPEG2000Codestream fuzzes only the bytes of 64 × 48 10-bit
// codestreams, so that most inputs keep a valid SIZ and reach OpenJPEG
// (Go's coverage guidance does not see into C).
func FuzzJPEG2000Codestream(f *testing.F) {
	if !haveOpenJPEG {
		f.Skip("JPEG 2000 needs cgo")
	}
	var frame Frame
	for _, c := range loadSmall(f) {
		if c.Name == "mono10-j2k-lossless" || c.Name == "mono10-j2k-lossy" {
			frame = c.frame(f)
			f.Add(frame.Data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := frame
		fr.Data = data
		px, err := Decode(fr)
		if err == nil && len(px.Data) != 64*48*2 {
			t.Fatalf("decoded %d bytes", len(px.Data))
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrInvalidFrame) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
	})
}
