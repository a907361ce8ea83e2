package codec_test

import (
	"errors"
	"fmt"

	"github.com/radgate/radgate/inference/codec"
)

// A frame of RLE Lossless data: one segment (8-bit grey, 2 × 3 pixels)
// with a literal run of three bytes and a replicate run of three.
func ExampleDecode() {
	frame := make([]byte, 64)
	frame[0] = 1  // one segment
	frame[4] = 64 // starting right after the header
	frame = append(frame, 0x02, 10, 20, 30, 0xFE, 40)

	px, err := codec.Decode(codec.Frame{
		TransferSyntaxUID: codec.RLELossless,
		Data:              frame,
		Rows:              2, Columns: 3, SamplesPerPixel: 1,
		BitsAllocated: 8, BitsStored: 8, PixelRepresentation: 0,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(px.Rows, px.Columns, px.Data)
	// Output: 2 3 [10 20 30 40 40 40]
}

// Decoding failures name the transfer syntax and wrap a sentinel error.
func ExampleDecode_error() {
	_, err := codec.Decode(codec.Frame{
		TransferSyntaxUID: codec.JPEGLosslessSV1,
		Data:              []byte("not a JPEG stream"),
		Rows:              440, Columns: 440, SamplesPerPixel: 1,
		BitsAllocated: 16, BitsStored: 10,
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, codec.ErrCorrupt))
	var de *codec.DecodeError
	if errors.As(err, &de) {
		fmt.Println(de.Name)
	}
	// Output:
	// decoding JPEG Lossless SV1 (1.2.840.10008.1.2.4.70): corrupt or mismatched stream: no JPEG SOI marker at the start of the frame
	// true
	// JPEG Lossless SV1
}
