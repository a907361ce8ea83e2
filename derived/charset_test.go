package derived

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

// The jp-charset samples (testdata/jp-charset/README.md): the names as the
// README gives them, the institution and study each file holds.
var jpSources = []struct {
	file, name, institution, study string
}{
	{"jp-ir87-kanji.dcm", "Tanaka^Ichiro=田中^一郎=たなか^いちろう", "京都府立医科大学附属病院", "胸部Ｘ線"},
	{"jp-ir13-ir87-katakana.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", "津山中央病院", "胸部X線 正面"},
	{"jp-utf8.dcm", "Sato^Hanako=佐藤^花子=さとう^はなこ", "遠隔画像診断センター", "胸部X線"},
}

// The Secondary Capture and the SR of each Japanese source carry its
// Patient's Name, Study Description and Institution Name decoded from the
// source's character set (ISO 2022 IR 87 with the 0x5C trap, ISO 2022 IR
// 13 with G1 katakana, ISO_IR 192) and written in UTF-8 under ISO_IR 192,
// beside radgate's own text (the disclaimer's em dash): read back by our
// decoder and by dcmdump +U8, and dciodvfy finds no error.
func TestDerivedJapaneseNames(t *testing.T) {
	for _, s := range jpSources {
		t.Run(s.file, func(t *testing.T) {
			src, err := os.ReadFile(testenv.Testdata("jp-charset", s.file))
			require.NoError(t, err)
			in := testInput("jp-"+s.file, 0.873, true)
			in.HeatmapPNG = Heatmap(t, src)
			sc, err := SecondaryCapture(src, in)
			require.NoError(t, err)
			sr, err := StructuredReport(src, in)
			require.NoError(t, err)
			for _, obj := range []struct {
				what string
				data []byte
				iod  string
			}{{"SC", sc, ""}, {"SR", sr, "Comprehensive3DSR"}} {
				x, err := inference.ReadText(obj.data)
				require.NoError(t, err)
				require.NoError(t, x.CharacterSetErr)
				require.Equal(t, "ISO_IR 192", x.CharacterSet.String(), obj.what)
				require.Equal(t, s.name, x.PersonName(tag.PatientName).String(), obj.what)
				got, _ := x.String(tag.StudyDescription)
				require.Equal(t, s.study, got, obj.what)
				got, _ = x.String(tag.InstitutionName)
				require.Equal(t, s.institution, got, obj.what)

				d := Dump(t, "dcmdump", obj.data, "+U8")
				for _, want := range []string{
					"(0008,0005) CS [ISO_IR 192]",
					"(0010,0010) PN [" + s.name + "]",
					"(0008,0080) LO [" + s.institution + "]",
					"(0008,1030) LO [" + s.study + "]",
				} {
					require.True(t, strings.Contains(d, want), "%s: dcmdump +U8 lacks %s", obj.what, want)
				}
				iod, _ := testenv.Dciodvfy(t, obj.what, obj.data)
				if obj.iod != "" {
					require.Equal(t, obj.iod, iod)
				}
			}
		})
	}
}
