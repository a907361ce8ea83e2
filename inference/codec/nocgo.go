//go:build !cgo

package codec

// Without cgo there is no OpenJPEG: Supported reports JPEG 2000 as
// unsupported and Decode refuses it with ErrUnsupported.

const haveOpenJPEG = false

func decodeJPEG2000(*Frame) (*Pixels, error) {
	return nil, unsupported("JPEG 2000 needs cgo and OpenJPEG")
}
