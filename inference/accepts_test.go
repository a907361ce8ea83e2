package inference

import (
	"path/filepath"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

func TestCheckImage(t *testing.T) {
	def := loadTestManifest(t, DefaultEngineID)
	k224 := loadTestManifest(t, "cxr-pneumonia-densenet121-k224")
	paed := &YearRange{Min: 1, Max: 5} // MODEL_CARD.md "Population": children aged 1–5
	require.Equal(t, Accepts{MinRows: 28, MinColumns: 28, PixelSpacingMM: &Range{Min: 0.05, Max: 1.0}, AgeYears: paed}, def.Accepts)
	require.Equal(t, Accepts{MinRows: 224, MinColumns: 224, PixelSpacingMM: &Range{Min: 0.05, Max: 1.0}, AgeYears: paed}, k224.Accepts)

	meta := func(rows, cols int, spacing float64) *Meta {
		m := &Meta{Rows: rows, Columns: cols, Modality: "DX", BodyPartExamined: "CHEST",
			Age: Age{Known: true, Years: 4, Text: "4 y", From: "Patient's Age"}}
		if spacing != 0 {
			m.PixelSpacing, m.PixelSpacingFrom = [2]float64{spacing, spacing}, "Imager Pixel Spacing"
		}
		return m
	}
	for _, tc := range []struct {
		name string
		m    *Manifest
		meta *Meta
		want string // "" accepted
	}{
		{"16² below 28²", def, meta(16, 16, 0), "image 16×16 px (rows×columns) is below engine cxr-pneumonia-densenet121's minimum matrix 28×28 (accepts.min_rows, accepts.min_columns)"},
		{"28² is the default engine's own size", def, meta(28, 28, 0), ""},
		{"one short edge is enough to refuse", k224, meta(1024, 200, 0), "image 1024×200 px (rows×columns) is below engine cxr-pneumonia-densenet121-k224's minimum matrix 224×224"},
		{"224² for k224", k224, meta(224, 224, 0), ""},
		{"spacing in range", k224, meta(2000, 2000, 0.15), ""},
		{"spacing too fine", k224, meta(2000, 2000, 0.01), "image pixel spacing 0.01×0.01 mm (Imager Pixel Spacing) is outside engine cxr-pneumonia-densenet121-k224's range 0.05–1 mm (accepts.pixel_spacing_mm)"},
		{"spacing too coarse", def, meta(28, 28, 7), "pixel spacing 7×7 mm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.CheckImage(tc.meta)
			if tc.want == "" {
				require.NoError(t, err)
				require.Empty(t, tc.m.Check(tc.meta), "no warning for score either")
				return
			}
			require.ErrorIs(t, err, ErrNotAccepted)
			require.ErrorContains(t, err, tc.want)
			require.Contains(t, tc.m.Check(tc.meta), tc.want, "score warns with the same words")
		})
	}
}

func TestPixelSpacingRead(t *testing.T) {
	for _, tc := range []struct {
		file string
		want [2]float64
		from string
	}{
		{"cr-chest-pa-jpeg-baseline.dcm", [2]float64{0.168, 0.168}, "Pixel Spacing"},
		{"cr-chest-mono1-jpeg2000-lossy.dcm", [2]float64{}, ""}, // 0.000\0.000: not calibrated
		{"dx-chest-implicit-le-8bit.dcm", [2]float64{}, ""},     // none
	} {
		m, err := ReadHeaderFile(testenv.Testdata("cxr-dicom", tc.file))
		require.NoError(t, err)
		require.Equal(t, tc.want, m.PixelSpacing, tc.file)
		require.Equal(t, tc.from, m.PixelSpacingFrom, tc.file)
	}
	// Every chest radiograph of testdata passes both shipped engines'
	// image rules; only an adult's (a 1940 birth date) is refused, for
	// its age.
	for _, dir := range []string{"cxr-dicom", "kermany224-val-dicom"} {
		for _, id := range []string{DefaultEngineID, "cxr-pneumonia-densenet121-k224"} {
			m := loadTestManifest(t, id)
			checkDir(t, dir, func(meta *Meta) {
				if meta.Age.Known && meta.Age.Years > 5 {
					require.ErrorContains(t, m.CheckImage(meta), "(accepts.age_years)")
					return
				}
				if meta.BodyPartExamined == "CHEST" {
					require.NoError(t, m.CheckImage(meta), "%s %s", id, meta.SOPInstanceUID)
				}
			})
		}
	}
}

// checkDir calls f with the header of every file of testdata/dir.
func checkDir(t *testing.T, dir string, f func(*Meta)) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.Testdata(dir), "*.dcm"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, p := range files {
		m, err := ReadHeaderFile(p)
		require.NoError(t, err, p)
		f(m)
	}
}
