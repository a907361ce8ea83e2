package dimse

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/dicomcs"
)

// seqItem is an undefined-length sequence (tag t) of one undefined-length
// item holding inner, in Explicit VR Little Endian.
func seqItem(t Tag, inner []byte) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint16(b, t.Group())
	b = binary.LittleEndian.AppendUint16(b, t.Element())
	b = append(b, "SQ"...)
	b = append(b, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, undefinedLength)
	b = append(b, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF) // item, undefined length
	b = append(b, inner...)
	b = append(b, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0) // item delimitation
	b = append(b, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0) // sequence delimitation
	return b
}

func TestIdentifierRoundTrip(t *testing.T) {
	id := NewIdentifier(LevelStudy, map[Tag]string{TagAccessionNumber: "A12345", TagStudyInstanceUID: "1.2.3", TagSpecificCharacterSet: "ISO_IR 192"})
	for _, explicit := range []bool{true, false} {
		b := id.Encode(explicit)
		require.Zero(t, len(b)%2)
		back, err := DecodeDataset(b, explicit)
		require.NoError(t, err)
		assert.Equal(t, "STUDY", back.String(TagQueryRetrieveLevel))
		assert.Equal(t, "A12345", back.String(TagAccessionNumber))
		assert.Equal(t, "1.2.3", back.String(TagStudyInstanceUID))
		assert.Equal(t, "ISO_IR 192", back.String(TagSpecificCharacterSet), "passed through")
		e, _ := back.Get(TagStudyInstanceUID)
		assert.Equal(t, []byte("1.2.3\x00"), e.Value, "UI padded with NUL")
		e, _ = back.Get(TagAccessionNumber)
		assert.Equal(t, "SH", e.VR)
		assert.Equal(t, b, back.Encode(explicit))
	}
	// Values in another character set pass through as bytes.
	d := &Dataset{}
	d.Set(TagInstitutionName, "", "\x1b$B;3ED\x1b(B")
	back, err := DecodeDataset(d.Encode(true), true)
	require.NoError(t, err)
	assert.Equal(t, "\x1b$B;3ED\x1b(B", back.String(TagInstitutionName))
}

func TestDecodeDatasetSequencesAndErrors(t *testing.T) {
	inner := (&Dataset{Elements: []Element{{Tag: TagModality, VR: "CS", Value: []byte("CR")}}}).Encode(true)
	// (0008,0052) Query/Retrieve Level, then (0008,1115) a sequence.
	b := append(NewIdentifier(LevelSeries, nil).Encode(true), seqItem(0x00081115, inner)...)
	d, err := DecodeDataset(b, true)
	require.NoError(t, err)
	require.Len(t, d.Elements, 2)
	sq, ok := d.Get(0x00081115)
	require.True(t, ok)
	assert.Equal(t, "SQ", sq.VR)
	again, err := DecodeDataset(d.Encode(true), true)
	require.NoError(t, err, "a sequence re-encoded with a defined length reads back")
	assert.Equal(t, d.Elements, again.Elements)

	for name, bad := range map[string][]byte{
		"header cut":        {0x08, 0x00, 0x50},
		"length past end":   {0x08, 0x00, 0x50, 0x00, 'S', 'H', 0x20, 0x00, 'A'},
		"out of order":      append(NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: "1"}).Encode(true), NewIdentifier("", nil).Encode(true)...),
		"sequence open":     seqItem(0x00081115, inner)[:20],
		"not a VR":          {0x08, 0x00, 0x50, 0x00, 0x01, 0x02, 0x00, 0x00},
		"item at top level": {0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0},
	} {
		_, err := DecodeDataset(bad, true)
		assert.Error(t, err, name)
	}
	// Nesting beyond the bound is refused, not followed.
	deep := inner
	for range maxSequenceDepth + 2 {
		deep = seqItem(0x00081115, deep)
	}
	_, err = DecodeDataset(deep, true)
	assert.ErrorContains(t, err, "nested deeper")
}

// FuzzDecodeIdentifier: an arbitrary data set in either VR encoding either
// fails to decode or decodes to elements that re-encode to bytes that
// decode to the same tags and values, and re-encode identically.
func FuzzDecodeIdentifier(f *testing.F) {
	for _, explicit := range []bool{true, false} {
		f.Add(NewIdentifier(LevelImage, map[Tag]string{TagStudyInstanceUID: "1.2.840.1", TagSeriesInstanceUID: "", TagSOPInstanceUID: "",
			TagSOPClassUID: "", TagViewPosition: "PA", TagSpecificCharacterSet: "ISO 2022 IR 87"}).Encode(explicit), explicit)
	}
	inner := (&Dataset{Elements: []Element{{Tag: TagModality, VR: "CS", Value: []byte("CR")}}}).Encode(true)
	f.Add(append(NewIdentifier(LevelSeries, nil).Encode(true), seqItem(0x00081115, inner)...), true)
	f.Fuzz(func(t *testing.T, data []byte, explicit bool) {
		d, err := DecodeDataset(data, explicit)
		if err != nil {
			return
		}
		b := d.Encode(explicit)
		d2, err := DecodeDataset(b, explicit)
		if err != nil {
			t.Fatalf("re-encoded data set does not decode: %v", err)
		}
		if len(d2.Elements) != len(d.Elements) {
			t.Fatalf("%d elements, %d after a round trip", len(d.Elements), len(d2.Elements))
		}
		for i := range d.Elements {
			if d.Elements[i].Tag != d2.Elements[i].Tag || !bytes.Equal(d.Elements[i].Value, d2.Elements[i].Value) {
				t.Fatalf("element %d differs after a round trip", i)
			}
		}
		if !bytes.Equal(d2.Encode(explicit), b) {
			t.Fatal("encoding is not stable")
		}
		_ = d.String(TagStudyInstanceUID)
	})
}

// A C-FIND answer's Institution Name in ISO 2022 IR 87 decodes to the
// facility's name — the kanji whose second JIS byte is 0x5C (府) included.
func TestDatasetTextDecodesByItsCharacterSet(t *testing.T) {
	const name = "京都府立医科大学附属病院"
	raw, subst := dicomcs.EncodeIR87(name)
	if subst != 0 {
		t.Fatalf("%d characters substituted", subst)
	}
	var d Dataset
	d.Set(TagSpecificCharacterSet, "CS", `\ISO 2022 IR 87`)
	d.Elements = append(d.Elements, Element{Tag: TagInstitutionName, VR: "LO", Value: raw})
	slices.SortFunc(d.Elements, func(a, b Element) int { return cmpTag(a.Tag, b.Tag) })
	back, err := DecodeDataset(d.Encode(true), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Text(TagInstitutionName); got != name {
		t.Errorf("Text = %q, want %q", got, name)
	}
	if got := back.String(TagInstitutionName); got == name {
		t.Error("String decodes too: the test proves nothing")
	}
}
