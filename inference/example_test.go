package inference_test

import (
	"fmt"

	"github.com/radgate/radgate/inference"
)

// Tiers come from the unrounded probability: 0.6499 shows as 65.0 % but is
// Mid; the region is marked from 0.50.
func ExampleTierOf() {
	for _, p := range []float64{0.12, 0.30, 0.5, 0.6499, 0.65} {
		fmt.Println(p, inference.TierOf(p), inference.ConfidencePercent(p), inference.DefaultThresholds.Marked(p))
	}
	// Output:
	// 0.12 Low 12 false
	// 0.3 Mid 30 false
	// 0.5 Mid 50 true
	// 0.6499 Mid 65 true
	// 0.65 High 65 true
}

// Engines are the manifests under the models directory.
func ExampleLoadEngines() {
	reg, err := inference.LoadEngines("../models")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range reg.Manifests() {
		fmt.Println(m.ID, m.Preprocessing.Crop, m.Modalities, m.BodyParts, m.Finding.Code)
	}
	// Output:
	// cxr-pneumonia-densenet121 center-square [CR DX] [CHEST] 233604007
	// cxr-pneumonia-densenet121-k224 none [CR DX] [CHEST] 233604007
}

// A file in a transfer syntax that is not decoded yet says which.
func ExampleDecodeFile() {
	for _, f := range []string{"cr-chest-mono1-10bit-explicit-le.dcm", "cr-chest-mono1-10bit-rle.dcm"} {
		img, err := inference.DecodeFile("../testdata/cxr-dicom/" + f)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(img.Meta.TransferSyntaxName(), img.Meta.Modality, img.Width, img.Height, img.Meta.PhotometricInterpretation, img.VOI)
	}
	// Output:
	// Explicit VR Little Endian CR 440 440 MONOCHROME1 window 550/1024 (LINEAR)
	// RLE Lossless CR 440 440 MONOCHROME1 window 550/1024 (LINEAR)
}
