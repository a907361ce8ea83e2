package dimse

import (
	"os"
	"strings"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
)

// The conformance statement (docs/dicom-conformance.md) names every SOP
// class and transfer syntax the acceptor takes, in the acceptor's order of
// preference, and radgate's identifying values.
func TestConformanceStatementMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile(testenv.RepoRoot() + "/docs/dicom-conformance.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, uid := range append([]string{VerificationSOPClass, implementationClassUID, ImplementationVersion, StudyRootFind, StudyRootMove, StudyRootGet}, StorageSOPClasses...) {
		if !strings.Contains(doc, "`"+uid+"`") {
			t.Errorf("docs/dicom-conformance.md does not name %s", uid)
		}
	}
	last := -1
	for _, ts := range DefaultTransferSyntaxes {
		at := strings.Index(doc, "`"+ts+"` |")
		if at < 0 {
			t.Errorf("docs/dicom-conformance.md does not list transfer syntax %s", ts)
			continue
		}
		if at < last {
			t.Errorf("docs/dicom-conformance.md lists transfer syntax %s out of the acceptor's order of preference", ts)
		}
		last = at
	}
}
