package demo

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

func TestCloneMakesDistinctStudiesWithTheSamePixels(t *testing.T) {
	for _, name := range []string{"dx-chest-implicit-le-8bit.dcm", "cr-chest-pa-jpeg-baseline.dcm"} {
		t.Run(name, func(t *testing.T) {
			orig, err := os.ReadFile(testenv.Testdata("cxr-dicom", name))
			require.NoError(t, err)
			om, err := inference.ReadHeader(orig)
			require.NoError(t, err)
			a, am, err := Clone(orig, 7)
			require.NoError(t, err)
			b, bm, err := Clone(orig, 8)
			require.NoError(t, err)
			require.Len(t, a, len(orig))
			for _, m := range []*inference.Meta{am, bm} {
				require.NotEqual(t, om.StudyInstanceUID, m.StudyInstanceUID)
				require.NotEqual(t, om.SOPInstanceUID, m.SOPInstanceUID)
				require.NotEqual(t, om.AccessionNumber, m.AccessionNumber)
			}
			require.NotEqual(t, am.StudyInstanceUID, bm.StudyInstanceUID)
			require.NotEqual(t, am.AccessionNumber, bm.AccessionNumber)
			oi, err := inference.Decode(orig)
			require.NoError(t, err)
			ci, err := inference.Decode(b)
			require.NoError(t, err)
			require.Equal(t, oi.Plane(), ci.Plane())
		})
	}
}
