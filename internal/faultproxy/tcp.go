package faultproxy

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// TCP is a TCP proxy for tests that stands in a link (an edge's leaf
// connection to the hub): Cut closes every connection through it and
// refuses new ones until Restore, as a WAN link that drops. It listens on
// 127.0.0.1 only.
type TCP struct {
	upstream string
	ln       net.Listener

	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	closed bool

	in, out  atomic.Int64 // bytes client → upstream, upstream → client
	accepted atomic.Int64
	wg       sync.WaitGroup
}

// NewTCP starts a proxy to upstream (host:port) on a free port of 127.0.0.1.
func NewTCP(upstream string) (*TCP, error) {
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return nil, fmt.Errorf("faultproxy: upstream %q is not host:port", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listening: %w", err)
	}
	p := &TCP{upstream: upstream, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *TCP) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection through the proxy and refuses new ones
// (accepted, then closed at once) until Restore.
func (p *TCP) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore lets connections through again.
func (p *TCP) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Bytes reports what went through: client → upstream and upstream → client.
func (p *TCP) Bytes() (in, out int64) { return p.in.Load(), p.out.Load() }

// Accepted reports how many connections were let through.
func (p *TCP) Accepted() int64 { return p.accepted.Load() }

// Close stops the proxy and closes every connection.
func (p *TCP) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *TCP) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.cut || p.closed
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut || p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.accepted.Add(1)
		p.wg.Add(2)
		go p.pipe(up, c, &p.in)
		go p.pipe(c, up, &p.out)
	}
}

// pipe copies src to dst, counting, and closes both when either ends.
func (p *TCP) pipe(dst, src net.Conn, n *atomic.Int64) {
	defer p.wg.Done()
	// A cut link or a peer gone ends the copy: both ends are closed.
	_, _ = io.Copy(countingWriter{dst, n}, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
