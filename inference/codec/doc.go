// Package codec decodes the encapsulated (compressed) DICOM transfer
// syntaxes that radiographs arrive in, one frame at a time, into native
// little-endian sample words — the layout of uncompressed Explicit VR Little
// Endian Pixel Data — so that the grey-scale pipeline treats every encoding
// alike.
//
//	px, err := codec.Decode(codec.Frame{
//		TransferSyntaxUID: ts,          // e.g. codec.JPEGLosslessSV1
//		Data:              frameBytes,  // the frame's fragments, concatenated
//		Rows: 2140, Columns: 1760, SamplesPerPixel: 1,
//		BitsAllocated: 16, BitsStored: 10, PixelRepresentation: 0,
//	})
//	// px.Data: Rows × Columns × SamplesPerPixel little-endian 16-bit words.
//
// Transfer syntaxes and how each is decoded:
//
//   - RLE Lossless (1.2.840.10008.1.2.5): pure Go, PS3.5 Annex G.
//   - JPEG Baseline (…4.50) and JPEG Extended 8/12-bit (…4.51): pure Go,
//     sequential Huffman DCT with libjpeg's integer IDCT (bit-exact with
//     libjpeg and DCMTK). 8-bit progressive streams go to image/jpeg.
//   - JPEG Lossless process 14 (…4.57) and SV1 (…4.70): pure Go, all seven
//     predictors, point transform, restart intervals.
//   - JPEG-LS lossless (…4.80) and near-lossless (…4.81): pure Go, T.87
//     with CharLS's arithmetic (bit-exact with it and DCMTK). Debian's CharLS
//     2.4.1 was the plan, but it spins for seconds on a truncated stream;
//     see jpegls.go.
//   - JPEG 2000 lossless (…4.90) and lossy (…4.91): OpenJPEG 2.5 through
//     cgo (Debian libopenjp2-7-dev, found with pkg-config).
//
// Without cgo the package builds with JPEG 2000 unsupported (see
// Supported); everything else is pure Go.
//
// Safety: the Frame's attributes and the output size are checked first
// (Decoder.MaxBytes), then the stream's own header against the attributes,
// before anything sized by the stream is allocated or any C code runs; the
// C libraries get bounded buffers and every return code is checked. A
// failure is a *DecodeError naming the transfer syntax and the reason. The
// decoders are fuzzed (go test -fuzz=Fuzz…).
//
// Assembling a frame from fragments is the caller's job: for a single-frame
// image, every fragment of the Pixel Data in order; for a multi-frame image,
// the fragments the Basic (or Extended) Offset Table assigns to the frame.
package codec
