package hl7v2

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func frame(s string) string { return "\x0b" + s + "\x1c\r" }

func TestFrameReader(t *testing.T) {
	big := strings.Repeat("x", 100<<10) // beyond bufio's buffer
	for _, c := range []struct {
		name   string
		in     string
		max    int
		frames []string
		err    error
	}{
		{"one", frame("MSH|a"), 0, []string{"MSH|a"}, io.EOF},
		{"two, with line ends between", frame("A") + "\r\n" + frame("B") + "\n", 0, []string{"A", "B"}, io.EOF},
		{"empty block", frame(""), 0, []string{""}, io.EOF},
		{"large", frame(big), 0, []string{big}, io.EOF},
		{"nothing", "", 0, nil, io.EOF},
		{"only whitespace", "\r\n \t", 0, nil, io.EOF},
		{"junk before", "GET / HTTP/1.1\r\n", 0, nil, ErrFraming},
		{"junk between", frame("A") + "x" + frame("B"), 0, []string{"A"}, ErrFraming},
		{"cut inside", "\x0bMSH|", 0, nil, io.ErrUnexpectedEOF},
		{"cut after end block", "\x0bMSH|\x1c", 0, nil, io.ErrUnexpectedEOF},
		{"end block without CR", "\x0bMSH|\x1c\x0b", 0, nil, ErrFraming},
		{"start inside", "\x0bMSH|\x0bMSH|\x1c\r", 0, nil, ErrFraming},
		{"too large, then the next", frame("0123456789") + frame("ok"), 5, nil, ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			fr := NewFrameReader(strings.NewReader(c.in), c.max)
			var got []string
			var err error
			for {
				var b []byte
				if b, err = fr.ReadFrame(); err != nil {
					break
				}
				got = append(got, string(b))
			}
			require.Equal(t, c.frames, got)
			require.ErrorIs(t, err, c.err)
		})
	}

	t.Run("too large keeps the stream in step", func(t *testing.T) {
		fr := NewFrameReader(strings.NewReader(frame("MSH|^~\\&|A|B|C|D|x||ORM^O01|C7|P|2.5.1\rPID|1")+frame("ok")), 40)
		_, err := fr.ReadFrame()
		var tl *FrameTooLargeError
		require.True(t, errors.As(err, &tl))
		require.Equal(t, 40, tl.Max)
		require.Equal(t, 44, tl.Size)
		require.Equal(t, "MSH|^~\\&|A|B|C|D|x||ORM^O01|C7|P|2.5.1\rP", string(tl.Head), "the first Max bytes")
		require.EqualError(t, err, "MLLP message of 44 bytes exceeds the maximum of 40 bytes")
		hdr, err := ParseHeader(tl.Head)
		require.NoError(t, err)
		require.Equal(t, "C7", hdr.ControlID())
		b, err := fr.ReadFrame()
		require.NoError(t, err)
		require.Equal(t, "ok", string(b))
	})
}

func TestWriteFrame(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteFrame(&buf, []byte("MSH|x\r")))
	require.Equal(t, "\x0bMSH|x\r\x1c\r", buf.String())
	b, err := NewFrameReader(&buf, 0).ReadFrame()
	require.NoError(t, err)
	require.Equal(t, "MSH|x\r", string(b))
}
