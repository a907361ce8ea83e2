package inference

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
)

// jpSamples are testdata/jp-charset (see its README): the names as the
// README gives them, and the institution and study description each file
// holds.
var jpSamples = []struct {
	file, charset, name, institution, study string
}{
	{"jp-ir87-kanji.dcm", `\ISO 2022 IR 87`, "Tanaka^Ichiro=田中^一郎=たなか^いちろう", "京都府立医科大学附属病院", "胸部Ｘ線"},
	{"jp-ir13-ir87-katakana.dcm", `ISO 2022 IR 13\ISO 2022 IR 87`, "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", "津山中央病院", "胸部X線 正面"},
	{"jp-utf8.dcm", "ISO_IR 192", "Sato^Hanako=佐藤^花子=さとう^はなこ", "遠隔画像診断センター", "胸部X線"},
}

func jpPath(file string) string { return filepath.Join("..", "testdata", "jp-charset", file) }

func TestReadHeaderInstitutionNameJapanese(t *testing.T) {
	for _, s := range jpSamples {
		m, err := ReadHeaderFile(jpPath(s.file))
		if err != nil {
			t.Fatalf("%s: %v", s.file, err)
		}
		if m.InstitutionName != s.institution {
			t.Errorf("%s: InstitutionName = %q, want %q", s.file, m.InstitutionName, s.institution)
		}
		// Decode (pixels too) reads the same header.
		img, err := DecodeFile(jpPath(s.file))
		if err != nil {
			t.Fatalf("%s: %v", s.file, err)
		}
		if img.Meta.InstitutionName != s.institution {
			t.Errorf("%s: Decode: InstitutionName = %q", s.file, img.Meta.InstitutionName)
		}
	}
}

func TestReadTextJapanese(t *testing.T) {
	for _, s := range jpSamples {
		x, err := ReadTextFile(jpPath(s.file))
		if err != nil {
			t.Fatalf("%s: %v", s.file, err)
		}
		if x.CharacterSetErr != nil || x.CharacterSet.String() != s.charset {
			t.Errorf("%s: character set %q (%v), want %q", s.file, x.CharacterSet, x.CharacterSetErr, s.charset)
		}
		if got := x.PersonName(tag.PatientName).String(); got != s.name {
			t.Errorf("%s: Patient's Name = %q, want %q", s.file, got, s.name)
		}
		if got, _ := x.String(tag.StudyDescription); got != s.study {
			t.Errorf("%s: Study Description = %q, want %q", s.file, got, s.study)
		}
		if got, _ := x.String(tag.InstitutionName); got != s.institution {
			t.Errorf("%s: Institution Name = %q", s.file, got)
		}
		if got, ok := x.String(tag.ReferringPhysicianName); !ok || got != "" {
			t.Errorf("%s: empty Referring Physician's Name = %q, %v", s.file, got, ok)
		}
		if _, ok := x.String(tag.Tag{Group: 0x0010, Element: 0x2160}); ok {
			t.Errorf("%s: an absent element is present", s.file)
		}
	}
}

func TestReadTextErrors(t *testing.T) {
	if _, err := ReadText([]byte("not dicom")); err == nil {
		t.Error("ReadText of non-DICOM: no error")
	}
	data, err := os.ReadFile(jpPath("jp-ir87-kanji.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadText(data[:600]); err == nil {
		t.Error("ReadText of a truncated file: no error")
	}
}

// Facility matching reads Meta.InstitutionName (the image store's index of
// pushed studies, the routing facts): a facility named in kanji is found
// from each sample, the 0x5C trap included.
func TestInstitutionNameResolvesFacility(t *testing.T) {
	f := radgate.NewFacilities([]config.Facility{
		{ID: "kyoto", Name: "Kyoto", InstitutionNames: []string{"京都府立医科大学附属病院"}},
		{ID: "tsuyama", Name: "Tsuyama", InstitutionNames: []string{"津山中央病院"}},
		{ID: "remote", Name: "Remote reading", InstitutionNames: []string{"遠隔画像診断センター"}},
	})
	for file, want := range map[string]string{
		"jp-ir87-kanji.dcm": "kyoto", "jp-ir13-ir87-katakana.dcm": "tsuyama", "jp-utf8.dcm": "remote",
	} {
		m, err := ReadHeaderFile(jpPath(file))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Resolve(m.InstitutionName); got != want {
			t.Errorf("%s: facility %q, want %q", file, got, want)
		}
	}
}
