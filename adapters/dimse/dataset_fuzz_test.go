package dimse

import (
	"encoding/binary"
	"testing"
)

// FuzzExplicitToImplicit: any bytes are re-encoded or refused with an
// error, never a panic; what is re-encoded is never longer than the input
// (an Implicit VR header takes 8 bytes where an Explicit one takes 8 or 12,
// and delimiters are dropped for defined lengths).
func FuzzExplicitToImplicit(f *testing.F) {
	le := binary.LittleEndian
	var seed []byte
	seed = append(le.AppendUint16(le.AppendUint16(seed, 0x0040), 0xA730), 'S', 'Q', 0, 0)
	seed = le.AppendUint32(seed, undefinedLength)
	seed = le.AppendUint32(le.AppendUint16(le.AppendUint16(seed, 0xFFFE), 0xE000), undefinedLength)
	seed = append(le.AppendUint16(le.AppendUint16(seed, 0x0040), 0xA010), 'C', 'S', 8, 0)
	seed = append(seed, "CONTAINS"...)
	seed = le.AppendUint32(le.AppendUint16(le.AppendUint16(seed, 0xFFFE), 0xE00D), 0)
	seed = le.AppendUint32(le.AppendUint16(le.AppendUint16(seed, 0xFFFE), 0xE0DD), 0)
	f.Add(seed)
	f.Add([]byte{0x10, 0, 0x10, 0, 'P', 'N', 4, 0, 'D', 'o', 'e', ' '})
	f.Fuzz(func(t *testing.T, ds []byte) {
		out, err := ExplicitToImplicit(ds)
		if err != nil {
			return
		}
		if len(out) > len(ds) {
			t.Fatalf("%d bytes re-encoded as %d", len(ds), len(out))
		}
	})
}
