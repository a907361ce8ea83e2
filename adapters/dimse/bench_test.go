package dimse

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkStoreIngest: our Server receiving instances from our Dialer
// over loopback on one association, the handler reading every byte
// (MB/s through b.SetBytes; instances/s as a metric). The data set is the
// 1 MiB Implicit VR testdata radiograph.
func BenchmarkStoreIngest(b *testing.B) {
	var f part10
	for _, c := range cxrFiles(b) {
		if c.transferSyntax == ImplicitVRLittleEndian {
			f = c
		}
	}
	sink := StoreHandlerFunc(func(ctx context.Context, rq *StoreRequest, data io.Reader) Status {
		if _, err := io.Copy(io.Discard, data); err != nil {
			return StatusOutOfResources
		}
		return StatusSuccess
	})
	addr, _ := startServer(b, &Server{AETitle: "RADGATE", Store: sink})
	ctx := context.Background()
	a, err := (&Dialer{CallingAE: "BENCH", CalledAE: "RADGATE"}).Dial(ctx, addr, StoreContexts([]string{f.sopClass}, ImplicitVRLittleEndian))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Release(ctx)
	b.SetBytes(int64(len(f.dataset)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		s, err := a.Store(ctx, f.sopClass, f.sopInstance, ImplicitVRLittleEndian, bytes.NewReader(f.dataset))
		if err != nil || s != StatusSuccess {
			b.Fatal(s, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "instances/s")
}
