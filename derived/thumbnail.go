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
	W, H := img.Width, img.Height
	ow, oh := W, H
	if long := max(W, H); maxEdge > 0 && long > maxEdge {
		s := float64(maxEdge) / float64(long)
		ow, oh = max(1, int(float64(W)*s+0.5)), max(1, int(float64(H)*s+0.5))
	}
	plane := img.Plane()
	grey := plane
	if ow != W || oh != H {
		grey = make([]float32, ow*oh)
		inference.Resize(plane, W, image.Rect(0, 0, W, H), grey, ow, oh, true)
	}
	out := image.NewGray(image.Rect(0, 0, ow, oh))
	for i, v := range grey {
		out.Pix[i] = uint8(min(max(v, 0), 1)*255 + 0.5)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
