//go:build !cgo

package codec

// Without cgo there is no OpenJPEG: Supported reports JPEG 2000 as
// unsupported and Decode refuses it with ErrUnsupported.

const haveOpenJPEG = false

func decodeJPEG2000(*Frame) (*Pixels, error) {
	return nil, unsupported("JPEG 2000 needs cgo and OpenJPEG")
}

// TurboJPEG is false without cgo: there is no libjpeg-turbo, and callers
// use Go's image/jpeg.
const TurboJPEG = false

// DecodeJPEGGray is not available without cgo.
func DecodeJPEGGray([]byte, int, int) ([]byte, error) {
	return nil, unsupported("libjpeg-turbo needs cgo")
}

// EncodeJPEG is not available without cgo.
func EncodeJPEG([]byte, int, int, int, bool, int) ([]byte, error) {
	return nil, unsupported("libjpeg-turbo needs cgo")
}
