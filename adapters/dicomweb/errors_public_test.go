package dicomweb

import (
	"fmt"
	"strings"
	"testing"

	"github.com/radgate/radgate"
)

// An order's answer says what the PACS answered, never the request path
// (accession number, UIDs) or the PACS's own message; the log keeps both.
func TestHTTPErrorPublicWording(t *testing.T) {
	e := &HTTPError{Op: "QIDO-RS", Method: "GET", Path: "/dicom-web/studies?AccessionNumber=ACC-991", StatusCode: 500,
		Message: "Zyxwa Testpatient: internal error"}
	err := radgate.Transient(fmt.Errorf("finding the study: %w", e))
	pub := radgate.Public(err)
	if pub != "the PACS answered 500 Internal Server Error to QIDO-RS" {
		t.Fatalf("Public = %q", pub)
	}
	for _, leak := range []string{"ACC-991", "/dicom-web", "Zyxwa"} {
		if strings.Contains(pub, leak) {
			t.Errorf("public wording leaks %q", leak)
		}
	}
	if !strings.Contains(err.Error(), "ACC-991") {
		t.Error("the full error (for the log) keeps the path")
	}
	if got := radgate.Public(fmt.Errorf("plain")); got != "plain" {
		t.Errorf("an error without a public wording: %q", got)
	}
}
