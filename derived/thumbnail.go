package derived

import (
	"bytes"
	"fmt"
	"image"
	"image/png"

	"github.com/radgate/radgate/inference"
)

// Thumbnail renders a radiograph (Part 10 as stored) as a grey PNG whose
// long edge is at most maxEdge, through the same PS3.3 pixel pipeline and
// area downscaling as the inference stage: the picture of a report whose
// result is not marked.
func Thumbnail(src []byte, maxEdge int) ([]byte, error) {
	img, err := inference.Decode(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSource, err)
	}
	grey, w, h := greyScaled(img, maxEdge)
	out := &image.Gray{Pix: grey, Stride: w, Rect: image.Rect(0, 0, w, h)}
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
