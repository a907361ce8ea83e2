package hl7v2

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/radgate/radgate"
)

func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	for _, name := range []string{"orm_o01.hl7", "omi_o23.hl7", "oru_r01_ris.hl7"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b, bytes.ReplaceAll(b, []byte("\n"), []byte("\r")), bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
	}
	r := sampleResult()
	oru, err := ORU(r, ORUOptions{Time: time.Unix(0, 0), PDF: []byte("%PDF-1.4 x")})
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, oru.Encode())
	r.Outcome, r.Reason = "failed", "no images\nat all"
	oruX, err := ORU(r, ORUOptions{Time: time.Unix(0, 0), Delimiters: Delimiters{FieldSep: '$', ComponentSep: '%', RepetitionSep: '@', EscapeChar: '*', SubcomponentSep: '&'}})
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, oruX.Encode())
	ack := NewACKWith(nil, ACKOptions{Time: time.Unix(0, 0), ControlID: "A"}, AE, ErrorDetail{Loc: Location{Segment: "PID", Seq: 1, Field: 3, Comp: 4, Sub: 2}, Code: 101, Message: "x|y"})
	seeds = append(seeds, ack.Encode())
	for _, s := range []string{
		"MSH|^~\\&|RIS|HOSP|||20240101||ORM^O01|C1|P|2.5.1\rPID|1||MRN1\rORC|CA|PLC-1|FIL-1\rOBR|1|PLC-1|FIL-1||||||||||||||||ACC-1",
		"MSH|^~\\&|RIS|HOSP|||20240101||OMI^O23|C2|P|2.5.1\rPID|1||MRN1\rORC|SC|PLC-1|FIL-1||CM\rOBR|1|PLC-1|FIL-1|X^Y^LN|||||||||||||||||||||F\rIPC|ACC-1||1.2.3",
		"MSH|^~\\&#|A|B|||20240101||ADT^A01|1|P|2.7\rPID|1||ID\\P\\1#",
		"MSH$%@*&$RIS$HOSP$$$20240101$$ORM%O01$X1$P$2.5.1\rPID$1$$A%B@C%D&E*F*x*S*y$",
		"MSH|^~\\&|A\rOBX|1|FT|x||a\\.br\\b\\X0D0A\\c\\H\\bold\\N\\\\Zlocal\\\\E\\\\.sp 3\\|||",
		"MSH|^~\\&|A\rMSH|^~\\&|B\rMSH|",
		"MSH|^~\\&\rPV1\rZDS|",
		"",
		"MSH",
		"MSH|^~\\|A",
		"PID|1",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzParse: Parse never panics; what it accepts encodes back to its
// canonical form and parses again to the same message; what it refuses is
// an *Error wrapping ErrMalformed. Accessors, the ACK builder, the order
// mapping, the verdict mapping (VerdictsFromORU) and the intake handler
// never panic on a parsed message.
//
//	go test ./adapters/hl7v2 -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v (%T) is not an *Error wrapping ErrMalformed", err, err)
			}
			if e.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		enc := m.Encode()
		if want := canonical(string(data)); string(enc) != want {
			t.Fatalf("Encode(Parse(x)) = %q, want %q", enc, want)
		}
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-parsing the encoding: %v", err)
		}
		if !bytes.Equal(again.Encode(), enc) {
			t.Fatalf("encoding not stable: %q vs %q", again.Encode(), enc)
		}
		d := m.Delimiters()
		for _, s := range m.All() {
			for f := 1; f <= min(s.Len(), 30); f++ {
				for r := 1; r <= min(max(s.Reps(f), 1), 3); r++ {
					v := s.Value(f, r, 1, 1)
					if d.Unescape(d.Escape(v)) != v {
						t.Fatalf("escape round trip of %q", v)
					}
					_ = s.GetRaw("1(2)-3-4")
				}
			}
		}
		_ = m.Type().String()
		_, _ = m.Time()
		_ = m.Get("PID-3(2)-4-2")
		_ = m.Count("OBX")
		_, _ = ReadACK(m)
		_, _ = OrderOptions{}.OrderEvents(m)
		// A verdict read from an ORU is an error, ErrNotVerdictMessage, or
		// verdicts each with a finding and a read id, or why not.
		if vs, err := VerdictsFromORU(m, VerdictOptions{}); err == nil {
			for _, v := range vs {
				if v.NotVerdict == "" && (v.Verdict.ReadID == "" || v.Verdict.Finding == "" ||
					(v.Verdict.Accession == nil && v.Verdict.StudyInstanceUID == "")) {
					t.Fatalf("verdict without read id, finding or key: %+v", v.Verdict)
				}
			}
		} else if !errors.Is(err, ErrNotVerdictMessage) && !errors.Is(err, radgate.ErrInvalidVerdict) && !errors.Is(err, ErrUnsupportedMessage) {
			t.Fatalf("VerdictsFromORU error %v is not classified", err)
		}
		// The intake's answer to an ORU, verdicts enabled, parses too.
		if _, err := Parse(NewIntakeHandler(&lifecycleIntake{}, IntakeOptions{Verdicts: newFakeRecorder()})(t.Context(), m).Encode()); err != nil {
			t.Fatalf("the intake's ACK to a verdict does not parse: %v", err)
		}
		// The intake's answer, whatever the order asks (a cancellation of
		// an unknown order included), is an ACK that parses.
		intakeAck, err := Parse(NewIntakeHandler(&lifecycleIntake{}, IntakeOptions{})(t.Context(), m).Encode())
		if err != nil {
			t.Fatalf("the intake's ACK does not parse: %v", err)
		}
		if a, err := ReadACK(intakeAck); err != nil || a.ControlID != m.ControlID() {
			t.Fatalf("the intake's ACK: %+v, %v (control id %q)", a, err, m.ControlID())
		}
		ack := NewACK(m, AE, ErrorDetail{Loc: Location{Segment: "PID", Seq: 1, Field: 3}, Code: 102, Message: m.ControlID()})
		back, err := Parse(ack.Encode())
		if err != nil {
			t.Fatalf("the ACK does not parse: %v\n%q", err, ack.Encode())
		}
		if got := back.Get("MSA-2"); got != m.ControlID() {
			t.Fatalf("MSA-2 = %q, want %q", got, m.ControlID())
		}
	})
}

// FuzzMLLPReader: the MLLP reader never panics, never returns a block over
// the limit or holding framing bytes, and classifies every error.
//
//	go test ./adapters/hl7v2 -run '^$' -fuzz FuzzMLLPReader -fuzztime 60s
func FuzzMLLPReader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(AppendFrame(nil, s), uint16(0))
		f.Add(AppendFrame(AppendFrame(nil, s), s), uint16(64))
		f.Add(append(AppendFrame(nil, s), "\r\n\x0bMSH|"...), uint16(200))
	}
	f.Add([]byte("\x0bA\x1c\x0b"), uint16(1))
	f.Add([]byte("\x0bA\x0bB\x1c\r"), uint16(1))
	f.Add([]byte("junk\x0bA\x1c\r"), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		max := int(limit%2048) + 1
		fr := NewFrameReader(bytes.NewReader(data), max)
		for range len(data) + 1 {
			b, err := fr.ReadFrame()
			var tl *FrameTooLargeError
			switch {
			case err == nil:
				if len(b) > max {
					t.Fatalf("block of %d bytes over the limit %d", len(b), max)
				}
				if bytes.IndexByte(b, StartBlock) >= 0 || bytes.IndexByte(b, EndBlock) >= 0 {
					t.Fatalf("block holds framing bytes: %q", b)
				}
				again, err := NewFrameReader(bytes.NewReader(AppendFrame(nil, b)), max).ReadFrame()
				if err != nil || !bytes.Equal(again, b) {
					t.Fatalf("re-framing %q: %q, %v", b, again, err)
				}
				continue
			case errors.As(err, &tl):
				if len(tl.Head) > max || tl.Size <= max || !errors.Is(err, ErrTooLarge) {
					t.Fatalf("bad FrameTooLargeError %+v (max %d)", tl, max)
				}
				continue
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, ErrFraming):
				return
			default:
				t.Fatalf("unclassified error %v", err)
			}
		}
		t.Fatal("more blocks than bytes")
	})
}
