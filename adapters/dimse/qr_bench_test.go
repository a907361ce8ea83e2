package dimse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
)

// uniqueStudy makes a study of n instances from a testdata file: new
// Study and SOP Instance UIDs and a new accession number, each of the
// length of the original so that the file stays valid as it is.
func uniqueStudy(tb testing.TB, name string, n int) (files [][]byte, rec InstanceRecord) {
	tb.Helper()
	raw := mustReadTB(tb, testenv.Testdata("cxr-dicom", name))
	rec, err := RecordOf(raw)
	if err != nil {
		tb.Fatal(err)
	}
	// The last component (or characters) replaced by digits of its length.
	swapLast := func(s string, sep byte, v int) string {
		i := strings.LastIndexByte(s, sep)
		return fmt.Sprintf("%s%c%d%0*d", s[:i], sep, 1+v%9, len(s)-i-2, v)[:len(s)]
	}
	seed := rand.IntN(1e6)
	study := swapLast(rec.StudyInstanceUID, '.', seed)
	acsn := swapLast("R"+rec.AccessionNumber[1:], 'R', seed)
	for i := range n {
		sop := swapLast(rec.SOPInstanceUID, '.', seed*100+i)
		f := bytes.ReplaceAll(raw, []byte(rec.StudyInstanceUID), []byte(study))
		f = bytes.ReplaceAll(f, []byte(rec.SOPInstanceUID), []byte(sop))
		f = bytes.ReplaceAll(f, []byte(rec.AccessionNumber), []byte(acsn))
		files = append(files, f)
	}
	rec, err = RecordOf(files[0])
	if err != nil {
		tb.Fatal(err)
	}
	return files, rec
}

// benchStudy makes a study of n instances from the 388 KB Explicit VR
// testdata radiograph and stores it in both Orthancs: the DIMSE-only one
// and the one with DICOMweb.
func benchStudy(b *testing.B, dp testenv.DIMSEOnlyPACS, wado *dicomweb.Client, n int) (study, series string, sops []string) {
	b.Helper()
	files, rec := uniqueStudy(b, "cr-chest-mono1-10bit-explicit-le.dcm", n)
	for _, f := range files {
		putInDIMSEPACS(b, dp, f)
		if _, err := wado.Store(context.Background(), f); err != nil {
			b.Fatal(err)
		}
		r, err := RecordOf(f)
		if err != nil {
			b.Fatal(err)
		}
		sops = append(sops, r.SOPInstanceUID)
	}
	return rec.StudyInstanceUID, rec.SeriesInstanceUID, sops
}

func mustReadTB(tb testing.TB, path string) []byte {
	tb.Helper()
	p := readPart10(tb, path)
	var b bytes.Buffer
	if err := WritePart10(&b, &StoreRequest{SOPClassUID: p.sopClass, SOPInstanceUID: p.sopInstance, TransferSyntaxUID: p.transferSyntax}, bytes.NewReader(p.dataset)); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// BenchmarkStudyRetrieval: one 8-instance study (3.1 MB) retrieved, in
// the same run, as radgate retrieves it from each kind of PACS:
//   - wado-rs: each instance with WADO-RS from the DICOMweb Orthanc
//     (dicomweb.Client.RetrieveInstance, as the pipeline asks for them);
//   - c-move: a C-MOVE of the study from the DIMSE-only Orthanc to
//     radgate's Storage SCP, whose Intake keeps each instance in the image
//     store (JetStream object store), as serve does;
//   - c-move-discard: the same C-MOVE into an SCP that reads and drops,
//     the protocol alone;
//   - c-get: a C-GET of the study on radgate's association, into the
//     image store.
//
// Each iteration opens its own association. Compare ns/op as ratios to
// wado-rs.
func BenchmarkStudyRetrieval(b *testing.B) {
	const n = 8
	pacs := testenv.Orthanc(b)
	dp := testenv.DIMSEPACS(b)
	wado, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	if err != nil {
		b.Fatal(err)
	}
	study, series, sops := benchStudy(b, dp, wado, n)
	b.Cleanup(func() {
		deleteStudy(b, pacs.URL, pacs.Username, pacs.Password, study)
		deleteStudy(b, dp.URL, dp.Username, dp.Password, study)
	})
	bytesPerStudy := int64(n * len(mustReadTB(b, testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))))

	b.Run("wado-rs", func(b *testing.B) {
		b.SetBytes(bytesPerStudy)
		for b.Loop() {
			for _, sop := range sops {
				if _, err := wado.RetrieveInstance(context.Background(), study, series, sop); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	arch := newArchive(b, ArchiveLimits{MaxAge: time.Hour})
	move := func(b *testing.B, aet string, handler StoreHandler, accept func(context.Context, *AssociateRequest) *Reject) {
		addr, _ := startServer(b, &Server{AETitle: aet, Store: handler, Accept: accept, Logger: slog.New(slog.DiscardHandler)})
		registerAE(b, dp, "bench-"+strings.ToLower(aet), aet, addr)
		src := &PACS{Dialer: Dialer{CallingAE: aet, CalledAE: dp.AETitle, Timeout: 30 * time.Second}, Addr: dp.Addr,
			Retrieve: RetrieveMove, MoveDestination: aet, Archive: arch}
		b.SetBytes(bytesPerStudy)
		for b.Loop() {
			res, err := src.retrieve(context.Background(), study)
			if err != nil || res.Completed != n {
				b.Fatalf("%+v %v", res, err)
			}
		}
	}
	b.Run("c-move", func(b *testing.B) {
		in := &Intake{Archive: arch, Orders: &orders{}, Facilities: radgate.NewFacilities([]config.Facility{}),
			PACSAETitles: []string{dp.AETitle}, MaxInstanceBytes: 64 << 20}
		move(b, "BENCH_MOVE", in, in.Accept)
	})
	b.Run("c-move-discard", func(b *testing.B) {
		move(b, "BENCH_DISCARD", StoreHandlerFunc(func(ctx context.Context, rq *StoreRequest, data io.Reader) Status {
			if _, err := io.Copy(io.Discard, data); err != nil {
				return StatusOutOfResources
			}
			return StatusSuccess
		}), nil)
	})
	b.Run("c-get", func(b *testing.B) {
		addr, _ := startServer(b, &Server{AETitle: "BENCH_GET", Logger: slog.New(slog.DiscardHandler)})
		registerAE(b, dp, "bench-get", "BENCH_GET", addr)
		src := &PACS{Dialer: Dialer{CallingAE: "BENCH_GET", CalledAE: dp.AETitle, Timeout: 30 * time.Second}, Addr: dp.Addr,
			Retrieve: RetrieveGet, Archive: arch}
		b.SetBytes(bytesPerStudy)
		for b.Loop() {
			res, err := src.retrieve(context.Background(), study)
			if err != nil || res.Completed != n {
				b.Fatalf("%+v %v", res, err)
			}
		}
	})
}

// deleteStudy removes a study from an Orthanc (REST: /tools/find, then
// DELETE /studies/{id}), so that benchmarks leave the peers as they were.
func deleteStudy(tb testing.TB, url, user, password, studyUID string) {
	tb.Helper()
	q, _ := json.Marshal(map[string]any{"Level": "Study", "Query": map[string]string{"StudyInstanceUID": studyUID}})
	rq, err := http.NewRequest("POST", url+"/tools/find", bytes.NewReader(q))
	if err != nil {
		tb.Fatal(err)
	}
	rq.SetBasicAuth(user, password)
	rsp, err := http.DefaultClient.Do(rq)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []string
	err = json.NewDecoder(rsp.Body).Decode(&ids)
	rsp.Body.Close()
	if err != nil {
		tb.Fatal(err)
	}
	for _, id := range ids {
		rq, _ := http.NewRequest("DELETE", url+"/studies/"+id, nil)
		rq.SetBasicAuth(user, password)
		if rsp, err := http.DefaultClient.Do(rq); err == nil {
			rsp.Body.Close()
		}
	}
}
