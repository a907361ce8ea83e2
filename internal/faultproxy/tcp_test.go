package faultproxy_test

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/faultproxy"
)

// echo is a TCP server on 127.0.0.1 that sends back every line.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) error {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	require.Equal(t, line+"\n", got)
	return nil
}

// TestTCPCutAndRestore: bytes pass both ways and are counted; Cut ends the
// connection through the proxy and refuses new ones; Restore lets them in.
func TestTCPCutAndRestore(t *testing.T) {
	p, err := faultproxy.NewTCP(echo(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })

	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	require.NoError(t, roundTrip(t, c, r, "hello"))
	in, out := p.Bytes()
	require.Equal(t, int64(6), in)
	require.Equal(t, int64(6), out)

	p.Cut()
	_, err = r.ReadString('\n')
	require.ErrorIs(t, err, io.EOF, "the connection survived the cut")
	c2, err := net.Dial("tcp", p.Addr()) // accepted, then closed at once
	require.NoError(t, err)
	defer c2.Close()
	_, err = bufio.NewReader(c2).ReadString('\n')
	require.ErrorIs(t, err, io.EOF, "a new connection got through the cut")

	p.Restore()
	c3, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c3.Close()
	require.NoError(t, roundTrip(t, c3, bufio.NewReader(c3), "again"))
	require.Equal(t, int64(2), p.Accepted())
}
