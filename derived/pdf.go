package derived

import (
	"bytes"
	"fmt"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// PDFSeriesDescription is the Series Description of the Encapsulated PDF.
const PDFSeriesDescription = "AI pneumonia report PDF (not a diagnosis)"

// EncapsulatedPDF wraps pdf (a PDF document, e.g. the report radgate renders
// for the result) as an Encapsulated PDF (SOP class
// 1.2.840.10008.5.1.4.1.1.104.1): Modality DOC, Document Title, Burned In
// Annotation YES, Source Instance Sequence naming the source, patient and
// study attributes copied from it, UIDs from UIDsFor(in.ResultID, in.Revision).
func EncapsulatedPDF(src []byte, in Input, pdf []byte) ([]byte, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		return nil, fmt.Errorf("%w: result %s: the document is not a PDF (no %%PDF- header)", ErrInput, in.ResultID)
	}
	if len(pdf) > 1<<30 {
		return nil, fmt.Errorf("%w: result %s: the PDF is %d bytes, over 1 GiB", ErrInput, in.ResultID, len(pdf))
	}
	s, err := readSource(src)
	if err != nil {
		return nil, err
	}
	u := in.UIDs()
	b := &builder{}
	b.common(s, &in, SOPClassEncapsulatedPDF, u.PDF, "DOC", u.PDFSeries, SeriesNumberPDF, PDFSeriesDescription)
	b.str(tag.ConversionType, "CS", "WSD")
	b.str(tag.AcquisitionDateTime, "DT", in.time().UTC().Format("20060102150405"))
	b.str(tag.BurnedInAnnotation, "CS", "YES")
	b.seq(tag.ConceptNameCodeSequence)
	b.str(tag.DocumentTitle, "ST", "AI analysis: "+in.engineLabel()+" (not a diagnosis)")
	b.str(tag.MIMETypeOfEncapsulatedDocument, "LO", "application/pdf")
	b.seq(tag.SourceInstanceSequence, s.ref())
	b.ints(tag.EncapsulatedDocumentLength, "UL", len(pdf))
	b.bytes(tag.EncapsulatedDocument, "OB", pdf)
	return b.part10(SOPClassEncapsulatedPDF, u.PDF)
}
