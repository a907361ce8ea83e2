package dimse

import (
	"encoding/binary"
	"fmt"
	"io"
)

// WritePart10 writes a DICOM file (PS3.10): the 128-byte preamble, "DICM",
// the file meta information (group 0002, Explicit VR Little Endian: SOP
// class and instance, transfer syntax, radgate's implementation class UID
// and version, the calling AE as source) and then the data set as
// received, unchanged.
func WritePart10(w io.Writer, rq *StoreRequest, data io.Reader) error {
	for name, v := range map[string]string{"SOP class UID": rq.SOPClassUID, "SOP instance UID": rq.SOPInstanceUID, "transfer syntax UID": rq.TransferSyntaxUID} {
		if v == "" || len(v) > 64 {
			return fmt.Errorf("dimse: WritePart10: %s %q must be 1 to 64 characters", name, v)
		}
	}
	var meta []byte
	meta = appendMeta(meta, 0x0001, "OB", []byte{0, 1})
	meta = appendMeta(meta, 0x0002, "UI", padUI(rq.SOPClassUID))
	meta = appendMeta(meta, 0x0003, "UI", padUI(rq.SOPInstanceUID))
	meta = appendMeta(meta, 0x0010, "UI", padUI(rq.TransferSyntaxUID))
	meta = appendMeta(meta, 0x0012, "UI", padUI(implementationClassUID))
	meta = appendMeta(meta, 0x0013, "SH", padText(ImplementationVersion))
	if ae := rq.Association.CallingAE; ae != "" {
		meta = appendMeta(meta, 0x0016, "AE", padText(ae))
	}
	out := make([]byte, 128, 128+4+12+len(meta))
	out = append(out, "DICM"...)
	out = appendMeta(out, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(len(meta))))
	out = append(out, meta...)
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("dimse: WritePart10: %w", err)
	}
	if _, err := io.Copy(w, data); err != nil {
		return fmt.Errorf("dimse: WritePart10: data set: %w", err)
	}
	return nil
}

func padUI(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func padText(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	return b
}

// appendMeta appends an Explicit VR Little Endian element of group 0002.
func appendMeta(b []byte, el uint16, vr string, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x0002)
	b = binary.LittleEndian.AppendUint16(b, el)
	b = append(b, vr...)
	if vr == "OB" {
		b = append(b, 0, 0)
		return append(binary.LittleEndian.AppendUint32(b, uint32(len(v))), v...)
	}
	return append(binary.LittleEndian.AppendUint16(b, uint16(len(v))), v...)
}
