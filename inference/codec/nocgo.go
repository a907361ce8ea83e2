//go:build !cgo

package codec

// Without cgo there is no CharLS and no OpenJPEG: Supported reports JPEG-LS
// and JPEG 2000 as unsupported and Decode refuses them with ErrUnsupported.

const (
	haveCharLS   = false
	haveOpenJPEG = false
)

func decodeJPEGLS(*Frame) (*Pixels, error) {
	return nil, unsupported("JPEG-LS needs cgo and CharLS")
}

func decodeJPEG2000(*Frame) (*Pixels, error) {
	return nil, unsupported("JPEG 2000 needs cgo and OpenJPEG")
}
