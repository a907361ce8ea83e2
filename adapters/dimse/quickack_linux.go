package dimse

import (
	"crypto/tls"
	"net"
	"syscall"
)

// quickAck asks Linux to acknowledge what arrives on nc at once instead of
// delaying the ACK (up to 40 ms) for a reply to piggyback on. A peer that
// writes a message in two small segments with Nagle's algorithm on (dcmtk's
// default, so Orthanc's) waits for that ACK before the second. The kernel
// leaves quick-ACK mode on its own, so it is asked again before each wait.
func quickAck(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
