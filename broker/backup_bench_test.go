package broker

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkBackupRestore backs up and restores the orders stream holding
// 10,000 order events of 1 KiB (ns/op is one message's backup + restore).
func BenchmarkBackupRestore(b *testing.B) {
	const n = 10_000
	srv, err := StartEmbedded(b.TempDir(), -1)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := Connect(srv.ClientURL(), "", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	topo, err := EnsureTopology(b.Context(), nc)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 1024)
	for i := range n {
		if _, err := topo.JS.PublishAsync(OrderSubject("routine", NoFacility, fmt.Sprintf("fhir-%d", i)), payload); err != nil {
			b.Fatal(err)
		}
	}
	<-topo.JS.PublishAsyncComplete()
	b.ResetTimer()
	for i := 0; i < b.N; i += n {
		dir := filepath.Join(b.TempDir(), "b")
		if _, err := Backup(b.Context(), topo.JS, dir); err != nil {
			b.Fatal(err)
		}
		if _, err := Restore(b.Context(), topo.JS, dir, RestoreOptions{Force: true}); err != nil {
			b.Fatal(err)
		}
	}
}
