package bench

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

func TestDayMixPlan(t *testing.T) {
	const n = 8000
	chest, other, stat := 0, 0, 0
	perSource := map[bool]map[int]int{true: {}, false: {}}
	for i := range n {
		s := dayMix.plan(i, 3, 2)
		perSource[s.Chest][s.Source]++
		switch {
		case s.Stat:
			require.True(t, s.Chest, "stat orders are chest orders")
			stat++
			chest++
		case s.Chest:
			chest++
		default:
			other++
		}
	}
	require.Equal(t, 800, other, "10 % non-chest")
	require.Equal(t, 400, stat, "5 % stat")
	require.Equal(t, 7200, chest)
	require.Equal(t, map[int]int{0: 400, 1: 400}, perSource[false], "non-chest sources in turn")
	require.InDelta(t, 2400, perSource[true][0], 1)
	require.InDelta(t, 2400, perSource[true][2], 1)

	// The bench's own phases: chest only, routine.
	for i := range 50 {
		require.Equal(t, study{Chest: true, Source: i % 3}, mix{}.plan(i, 3, 2))
	}
	require.Equal(t, study{Chest: true, Source: 9 % 3}, dayMix.plan(9, 3, 0), "no non-chest sources: all chest")
}

func TestCloneSetsIdentifiersAgeAndKeepsPixels(t *testing.T) {
	for _, name := range []string{
		"cr-chest-pa-jpeg-baseline.dcm",            // explicit VR LE, JPEG, age "62", empty birth date
		"dx-chest-implicit-le-8bit.dcm",            // implicit VR LE, no birth date element
		"cr-hip-jpeg-lossless.dcm",                 // no age element
		"cr-extremity-mono1-jpeg2000-lossless.dcm", // an adult's birth date
		"cr-chest-header-mono1-jpeg-baseline.dcm",
	} {
		t.Run(name, func(t *testing.T) {
			path := testenv.Testdata("cxr-dicom", name)
			tpl, err := newTemplate(path, "123456789")
			require.NoError(t, err)
			src, err := os.ReadFile(path)
			require.NoError(t, err)
			om, err := inference.ReadHeader(src)
			require.NoError(t, err)

			var buf []byte
			seen := map[string]bool{}
			for _, n := range []int{0, 7, 4242, 99999999} {
				b, c, err := tpl.clone(buf, n)
				require.NoError(t, err)
				buf = b
				m, err := inference.ReadHeader(b)
				require.NoError(t, err)
				require.Equal(t, c.Meta, *m, "the metadata the order gets is the clone's")
				require.True(t, strings.HasSuffix(m.StudyInstanceUID, fmt.Sprintf(".123456789.1%08d", n)), m.StudyInstanceUID)
				require.Len(t, m.AccessionNumber, 16)
				require.NotEqual(t, om.StudyInstanceUID, m.StudyInstanceUID)
				require.NotEqual(t, om.AccessionNumber, m.AccessionNumber)
				for _, v := range []string{m.StudyInstanceUID, m.SeriesInstanceUID, m.SOPInstanceUID, m.AccessionNumber} {
					require.False(t, seen[v], "every identifier unique: %s", v)
					seen[v] = true
				}
				require.Equal(t, om.Modality, m.Modality)
				require.Equal(t, om.BodyPartExamined, m.BodyPartExamined)
				require.Equal(t, 2, strings.Count(string(b), m.SOPInstanceUID), "file meta and data set agree")

				age, birth := dicomString(t, b, tpl.age, 4), dicomString(t, b, tpl.birthDate, 8)
				require.Equal(t, c.Age, int(age[2]-'0'))
				require.Equal(t, "00", age[:2])
				require.Equal(t, byte('Y'), age[3])
				require.GreaterOrEqual(t, c.Age, minAgeYears)
				require.LessOrEqual(t, c.Age, maxAgeYears)
				bd, err := time.Parse("20060102", birth)
				require.NoError(t, err)
				require.Equal(t, c.BirthDate, bd)
				require.Equal(t, c.Age, yearsBetween(bd, tpl.study), "Patient's Age matches the birth date on the study date")
			}
			oi, err := inference.Decode(src)
			require.NoError(t, err)
			ci, err := inference.Decode(buf)
			require.NoError(t, err)
			require.Equal(t, oi.Plane(), ci.Plane(), "same pixels")
		})
	}
}

func TestSetElementsRefusesWhatItCannotEdit(t *testing.T) {
	_, _, err := demo.SetElements([]byte("not dicom"), nil)
	require.Error(t, err)
	b, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-be.dcm"))
	require.NoError(t, err)
	_, _, err = demo.SetElements(b, []demo.Element{{Tag: tagAge, VR: "AS", Value: "003Y"}})
	require.ErrorContains(t, err, "little endian")
	_, err = newTemplate(testenv.Testdata("cxr-dicom", "absent.dcm"), "123456789")
	require.Error(t, err)
}

func dicomString(t *testing.T, b []byte, off, n int) string {
	t.Helper()
	require.LessOrEqual(t, off+n, len(b))
	return string(b[off : off+n])
}

func yearsBetween(birth, on time.Time) int {
	y := 0
	for !birth.AddDate(y+1, 0, 0).After(on) {
		y++
	}
	return y
}
