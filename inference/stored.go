package inference

import (
	"image"
	"sync"
)

// storedPlane is a grey image kept as its stored pixel words (8 or 16 bits)
// plus the grey pipeline's lookup table, which maps every possible word to
// its 0..1 value (Modality LUT, VOI, MONOCHROME1 inversion in one look-up).
// Decode keeps grey images of at most 16 bits allocated this way instead of
// building the full-size float32 plane: preprocessing resizes straight from
// the words through the table (see resizeRows), and a heatmap reads rows the
// same way, so the plane is only built when Image.Plane asks for it.
type storedPlane struct {
	data          []byte // row y starts at y*stride
	stride        int    // bytes per row
	width, height int
	bpp           int  // bytes per word: 1 or 2
	bigEndian     bool // 16-bit words in big-endian order
	table         []float32

	once sync.Once
	pix  []float32
}

// newStoredPlane wraps words (row-major, stride bytes per row) with table,
// which must have 1<<8 entries at least for bpp 1 and 1<<16 for bpp 2. It
// returns nil when the layout does not fit (the caller then decodes eagerly).
func newStoredPlane(data []byte, stride, w, h, bpp int, bigEndian bool, table []float32) *storedPlane {
	switch {
	case w <= 0 || h <= 0 || stride < w*bpp:
		return nil
	case bpp == 1 && len(table) < 1<<8, bpp == 2 && len(table) < 1<<16, bpp != 1 && bpp != 2:
		return nil
	case len(data) < (h-1)*stride+w*bpp:
		return nil
	}
	return &storedPlane{data: data, stride: stride, width: w, height: h, bpp: bpp, bigEndian: bigEndian, table: table}
}

// row writes the values of columns x0 … x0+len(dst)-1 of row y into dst.
func (s *storedPlane) row(y, x0 int, dst []float32) {
	off := y*s.stride + x0*s.bpp
	b := s.data[off : off+len(dst)*s.bpp]
	switch {
	case s.bpp == 1:
		tab := (*[1 << 8]float32)(s.table[:1<<8])
		for i, v := range b[:len(dst)] {
			dst[i] = tab[v]
		}
	case s.bigEndian:
		tab := (*[1 << 16]float32)(s.table[:1<<16])
		for i := range dst {
			dst[i] = tab[uint16(b[2*i])<<8|uint16(b[2*i+1])]
		}
	default:
		tab := (*[1 << 16]float32)(s.table[:1<<16])
		for i := range dst {
			dst[i] = tab[uint16(b[2*i])|uint16(b[2*i+1])<<8]
		}
	}
}

// add adds w × (row y, columns x0 … x0+len(acc)-1) into acc.
func (s *storedPlane) add(y, x0 int, w float64, acc []float64) {
	off := y*s.stride + x0*s.bpp
	b := s.data[off : off+len(acc)*s.bpp]
	switch {
	case s.bpp == 1:
		tab := (*[1 << 8]float32)(s.table[:1<<8])
		b = b[:len(acc)]
		for x, v := range b {
			acc[x] += w * float64(tab[v])
		}
	case s.bigEndian:
		tab := (*[1 << 16]float32)(s.table[:1<<16])
		for x := range acc {
			acc[x] += w * float64(tab[uint16(b[2*x])<<8|uint16(b[2*x+1])])
		}
	default:
		tab := (*[1 << 16]float32)(s.table[:1<<16])
		for x := range acc {
			acc[x] += w * float64(tab[uint16(b[2*x])|uint16(b[2*x+1])<<8])
		}
	}
}

// at returns the value at column x, row y.
func (s *storedPlane) at(x, y int) float32 {
	var v [1]float32
	s.row(y, x, v[:])
	return v[0]
}

// plane builds (once) and returns the full float32 plane.
func (s *storedPlane) plane() []float32 {
	s.once.Do(func() {
		pix := make([]float32, s.width*s.height)
		for y := 0; y < s.height; y++ {
			s.row(y, 0, pix[y*s.width:(y+1)*s.width])
		}
		s.pix = pix
	})
	return s.pix
}

// Plane returns the image's float32 plane (see Image.Pixels): Pixels when
// set, otherwise the plane built, once, from the stored words. Prefer
// Preprocess and RenderHeatmap, which read the stored words directly and
// never need the full-size plane.
func (img *Image) Plane() []float32 {
	if img.Pixels != nil || img.stored == nil {
		return img.Pixels
	}
	return img.stored.plane()
}

// consistent reports whether img holds a Width×Height image.
func (img *Image) consistent() bool {
	if img == nil || img.Width <= 0 || img.Height <= 0 {
		return false
	}
	if img.Pixels != nil {
		return len(img.Pixels) == img.Width*img.Height
	}
	return img.stored != nil && img.stored.width == img.Width && img.stored.height == img.Height
}

// adder returns the rowAdder of img over the columns of r.
func (img *Image) adder(r image.Rectangle) rowAdder {
	if img.Pixels == nil && img.stored != nil {
		s := img.stored
		return func(y int, w float64, acc []float64) { s.add(y, r.Min.X, w, acc) }
	}
	return planeAdder(img.Pixels, img.Width, r)
}

// rows returns a row reader over img for the columns of r: rows(y, buf)
// returns the values of row y, columns r.Min.X … r.Max.X-1, either a slice
// of Pixels or buf (which must hold r.Dx() values) filled from the stored
// words.
func (img *Image) rows(r image.Rectangle) func(y int, buf []float32) []float32 {
	if img.Pixels == nil && img.stored != nil {
		s := img.stored
		return func(y int, buf []float32) []float32 {
			s.row(y, r.Min.X, buf)
			return buf
		}
	}
	pix, w := img.Pixels, img.Width
	return func(y int, _ []float32) []float32 {
		return pix[y*w+r.Min.X : y*w+r.Max.X]
	}
}
