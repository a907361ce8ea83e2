package dicomweb_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
)

// A study source for the router: find the study an order names, then fetch
// each instance exactly as stored.
func ExampleClient_FindStudy() {
	pacs, err := dicomweb.New(dicomweb.Options{
		BaseURL:  "http://127.0.0.1:8042/dicom-web",
		Username: "radgate",
		Password: "radgate-test",
		Timeout:  30 * time.Second,
	})
	if err != nil {
		panic(err) // a configuration error
	}
	ctx := context.Background()
	study, err := pacs.FindStudy(ctx, radgate.StudyQuery{AccessionNumber: "RGS0012"})
	switch {
	case errors.Is(err, radgate.ErrStudyNotFound):
		return // not in the archive yet: the router retries later
	case radgate.IsTransient(err):
		return // PACS busy or unreachable: retry later
	case err != nil:
		return // permanent: fail the order with err as the reason
	}
	for _, se := range study.Series {
		for _, in := range se.Instances {
			file, err := pacs.RetrieveInstance(ctx, study.StudyInstanceUID, se.SeriesInstanceUID, in.SOPInstanceUID)
			if err != nil {
				return
			}
			fmt.Println(se.Modality, se.BodyPartExamined, len(file))
		}
	}
}
