package fhir

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testPDF stands in for a report: the builders carry the bytes, they do
// not read them.
var testPDF = []byte("%PDF-1.3\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n")

func TestConclusion(t *testing.T) {
	in := testInput(t, true)
	got, err := Conclusion(in)
	require.NoError(t, err)
	require.Equal(t, "Pneumonia: AI confidence 87.7 % (tier High), by CXR pneumonia DenseNet-121 1.0.0. "+
		"The region of interest is marked on the attached heatmap.", got)

	b, err := BuildResultBundle(in)
	require.NoError(t, err)
	dr := findResource(t, decodeTx(t, b), "DiagnosticReport")
	require.Equal(t, got+" "+testDisclaimer, dr["conclusion"], "the report's conclusion is the sentence and the disclaimer")

	in = testInput(t, false)
	in.Engine.Finding = Coding{}
	got, err = Conclusion(in)
	require.NoError(t, err)
	require.Equal(t, "Pneumonia: AI confidence 12.3 % (tier Low), by CXR pneumonia DenseNet-121 1.0.0.", got)

	in.Tier = "extreme"
	_, err = Conclusion(in)
	require.ErrorIs(t, err, ErrInvalidResult)
	require.ErrorContains(t, err, `"extreme" is not Low, Mid or High`)
	in.Tier, in.Probability = "Low", -0.1
	_, err = Conclusion(in)
	require.ErrorContains(t, err, "-0.1 is outside 0..1")
}

func TestResultBundlePresentedForm(t *testing.T) {
	in := testInput(t, false)
	b, err := BuildResultBundle(in)
	require.NoError(t, err)
	require.NotContains(t, findResource(t, decodeTx(t, b), "DiagnosticReport"), "presentedForm", "no PDF, no presentedForm")

	in.PDF = testPDF
	b, err = BuildResultBundle(in)
	require.NoError(t, err)
	dr := findResource(t, decodeTx(t, b), "DiagnosticReport")
	forms := dr["presentedForm"].([]any)
	require.Len(t, forms, 1)
	f := forms[0].(map[string]any)
	require.Equal(t, "application/pdf", f["contentType"])
	require.Equal(t, base64.StdEncoding.EncodeToString(testPDF), f["data"])
	require.EqualValues(t, len(testPDF), f["size"])
	require.Equal(t, "AI decision support report: CXR pneumonia DenseNet-121 1.0.0", f["title"])
	require.Equal(t, "2026-11-27T10:00:00.000Z", f["creation"], "created when scored")

	again, err := BuildResultBundle(in)
	require.NoError(t, err)
	require.Equal(t, string(b), string(again), "deterministic")
}

// TestRealServerPresentedForm: the real (validating) FHIR server accepts a
// DiagnosticReport with the PDF as presentedForm and gives it back intact.
func TestRealServerPresentedForm(t *testing.T) {
	s := realServer(t)
	in := testInput(t, true)
	in.ID = uniqueID(t)
	in.PDF = testPDF
	bundle, err := BuildResultBundle(in)
	require.NoError(t, err)
	tr := s.post(bundle)
	rep, ok := tr.Find("DiagnosticReport")
	require.True(t, ok)
	require.Equal(t, "201 Created", rep.Status)
	dr := s.read(rep.Reference)
	f := dr["presentedForm"].([]any)[0].(map[string]any)
	require.Equal(t, "application/pdf", f["contentType"])
	got, err := base64.StdEncoding.DecodeString(f["data"].(string))
	require.NoError(t, err)
	require.Equal(t, testPDF, got)
	require.True(t, strings.HasSuffix(dr["conclusion"].(string), testDisclaimer))
}

func findResource(t *testing.T, b tx, typ string) map[string]any {
	t.Helper()
	for _, e := range b.Entry {
		if e.Resource["resourceType"] == typ {
			return e.Resource
		}
	}
	t.Fatalf("no %s in the bundle", typ)
	return nil
}
