package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/inference"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// paddedArchive is the harness archive whose images are size bytes each:
// the SOP Instance UID, then zeros.
type paddedArchive struct {
	*archive
	size int
}

func (a *paddedArchive) RetrieveInstance(ctx context.Context, study, series, sop string) ([]byte, error) {
	b, err := a.archive.RetrieveInstance(ctx, study, series, sop)
	if err != nil {
		return nil, err
	}
	return append(b, make([]byte, max(0, a.size-len(b)))...), nil
}

// callScorer is the harness scorer, for padded images too, with images whose
// SOP Instance UID starts "small-" outside its intended use; it records the
// files of each Score call and how many images had been retrieved by then.
type callScorer struct {
	scorer
	arch *archive

	mu    sync.Mutex
	calls [][]string // the SOP Instance UIDs of each call
	seen  []int      // archive retrieves at each call
}

func (s *callScorer) Score(ctx context.Context, files [][]byte) ([]radgate.ImageScore, error) {
	sops := make([]string, len(files))
	for i, f := range files {
		sops[i] = strings.TrimRight(string(f), "\x00")
	}
	s.mu.Lock()
	s.calls = append(s.calls, sops)
	if s.arch != nil {
		s.arch.mu.Lock()
		s.seen = append(s.seen, s.arch.retrieves)
		s.arch.mu.Unlock()
	}
	s.mu.Unlock()
	trimmed := make([][]byte, len(files))
	for i, sop := range sops {
		trimmed[i] = []byte(sop)
	}
	out, err := s.scorer.Score(ctx, trimmed)
	for i, sop := range sops {
		if strings.HasPrefix(sop, "small-") {
			out[i] = radgate.ImageScore{Err: fmt.Errorf("%w: 512 rows, the engine takes at least 1024", inference.ErrNotAccepted)}
		}
	}
	return out, err
}

func newCallScorer(arch *archive) *callScorer {
	return &callScorer{arch: arch, scorer: scorer{probs: map[string]float64{"sop-1": 0.91, "sop-2": 0.12, "sop-3": 0.40, "sop-3b": 0.40}}}
}

func jobOf(id string, sops ...string) Job {
	job := Job{OrderID: id, Engine: "eng-a", StudyInstanceUID: "9.1"}
	for _, sop := range sops {
		job.Instances = append(job.Instances, JobInstance{SeriesInstanceUID: "9.1.1", SOPInstanceUID: sop, Modality: "CR", BodyPart: "CHEST"})
	}
	return job
}

// The stage retrieves the next image only once the one before is scored:
// each Score call gets one image, so a worker never holds a study's images
// together. The most confident image still wins.
func TestScoreStageScoresOneImageAtATime(t *testing.T) {
	var eng *callScorer
	h := newIdleHarness(t, func(o *Options) {
		eng = newCallScorer(nil)
		o.Engines = []radgate.Engine{eng}
	})
	eng.arch = h.arch
	h.arch.add("F1", "9.1", "CR", "CHEST", "sop-2", "jp2k-only", "sop-1", "small-1", "sop-3")
	st, err := h.p.Accept(t.Context(), sr("F1", "f1"))
	require.NoError(t, err)
	job := jobOf(string(st.ID), "sop-2", "jp2k-only", "sop-1", "small-1", "sop-3")
	require.Equal(t, ack, h.p.score(t.Context(), fakeMsg(t, job)).kind)

	require.Equal(t, [][]string{{"sop-2"}, {"jp2k-only"}, {"sop-1"}, {"small-1"}, {"sop-3"}}, eng.calls, "one image per Score call, in order")
	require.Equal(t, []int{1, 2, 3, 4, 5}, eng.seen, "image k+1 is retrieved only after image k is scored")
	got, err := h.p.Status(t.Context(), st.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateScored, got.Engines["eng-a"].State)
	require.InDelta(t, 0.91, *got.Engines["eng-a"].Probability, 1e-9)
}

// A job whose images come to more than orders.max_study_bytes fails as they
// arrive — nothing after the image that crosses the limit is retrieved —
// with a result naming the limit and the sizes; a study at the limit is
// scored.
func TestStudyOverMaxStudyBytesFailsWithTheLimit(t *testing.T) {
	var arch *paddedArchive
	h := newHarness(t, func(o *Options) {
		arch = &paddedArchive{archive: o.Source.(*archive), size: 1000}
		o.Source = arch
		o.Engines = []radgate.Engine{newCallScorer(nil)}
		o.MaxStudyBytes = 2500
	})
	h.arch.add("G1", "9.2", "CR", "CHEST", "sop-2", "sop-1", "sop-3", "sop-3b")
	st, err := h.p.Accept(t.Context(), sr("G1", "g1"))
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateFailed)
	want := "not scored: the images of the study for engine eng-a retrieved 2.9 KiB (3000 bytes) by image 3 of 4, more than orders.max_study_bytes (2.4 KiB)"
	require.Equal(t, "eng-a: "+want, st.Reason)
	require.Equal(t, 3, h.arch.retrieves, "retrieval stops at the image that crosses the limit")
	got := h.sink.results()
	require.Len(t, got, 1, "the failure is delivered as a result")
	for _, r := range got {
		require.Equal(t, radgate.OutcomeFailed, r.Outcome)
		require.Equal(t, want, r.Reason)
	}

	h.arch.add("G2", "9.3", "CR", "CHEST", "sop-2", "sop-3")
	st, err = h.p.Accept(t.Context(), sr("G2", "g2"))
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateDelivered)
	require.InDelta(t, 0.40, *st.Engines["eng-a"].Probability, 1e-9, "2000 bytes is within the limit")
}

func TestIECBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 1023: "1023 bytes", 1024: "1 KiB", 1 << 30: "1 GiB",
		1288490189: "1.2 GiB", 256 << 20: "256 MiB", 3 << 40: "3 TiB"} {
		require.Equal(t, want, iecBytes(n), "%d", n)
	}
}

// scoreImagesAllAtOnce is the inference stage's loop as it was before images
// were scored one at a time: every image retrieved into memory, then all
// scored in one call. Kept to show that the streaming loop gives the same
// results, and for BenchmarkScoreStageLargeStudies.
func scoreImagesAllAtOnce(p *Pipeline, ctx context.Context, job Job, eng radgate.Engine) studyScore {
	files := make([][]byte, 0, len(job.Instances))
	for _, in := range job.Instances {
		b, err := p.opts.Source.RetrieveInstance(ctx, job.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID)
		if err != nil {
			return studyScore{bestAt: -1, outcome: radgate.OutcomeFailed, reason: fmt.Sprintf("retrieving image %s from the PACS: %v", in.SOPInstanceUID, err)}
		}
		files = append(files, b)
	}
	scores, err := eng.Score(ctx, files)
	if err != nil {
		return studyScore{bestAt: -1, outcome: radgate.OutcomeFailed, reason: "scoring: " + err.Error()}
	}
	sc := studyScore{bestAt: -1, outcome: radgate.OutcomeNotApplicable}
	var failures []string
	for i, s := range scores {
		if s.Err != nil {
			failures = append(failures, fmt.Sprintf("image %s: %v", job.Instances[i].SOPInstanceUID, s.Err))
			if !errors.Is(s.Err, inference.ErrNotAccepted) {
				sc.outcome = radgate.OutcomeFailed
			}
			continue
		}
		if sc.bestAt < 0 || s.Probability > scores[sc.bestAt].Probability {
			sc.bestAt = i
		}
	}
	if sc.bestAt < 0 {
		sc.reason = strings.Join(failures, "; ")
	} else {
		sc.best = scores[sc.bestAt]
	}
	return sc
}

// Scoring one image at a time gives the results scoring them all at once
// gave: the first of the most confident images wins, failures are collected
// in order, images outside the intended use alone make the job not
// applicable.
func TestScoreImagesMatchesAllAtOnce(t *testing.T) {
	h := newIdleHarness(t, func(o *Options) { o.Engines = []radgate.Engine{newCallScorer(nil)} })
	eng, _ := h.p.engine("eng-a")
	for _, sops := range [][]string{
		{"sop-1"},
		{"sop-2", "sop-1", "sop-3"},
		{"sop-3", "sop-3b", "sop-2"},
		{"sop-3b", "sop-3", "sop-2"},
		{"jp2k-only", "sop-2", "small-1"},
		{"small-1", "small-2"},
		{"small-1", "jp2k-only"},
		{"jp2k-only"},
	} {
		t.Run(strings.Join(sops, ","), func(t *testing.T) {
			job := jobOf("o1", sops...)
			want := scoreImagesAllAtOnce(h.p, t.Context(), job, eng)
			got := h.p.scoreImages(t.Context(), fakeMsg(t, job), job, eng, radgate.AllPictures)
			require.Equal(t, want.bestAt, got.bestAt)
			require.Equal(t, want.outcome, got.outcome)
			require.Equal(t, want.reason, got.reason)
			require.Equal(t, want.best.Probability, got.best.Probability)
			wr, gr := resultOf(job, eng, want, radgate.AllPictures), resultOf(job, eng, got, radgate.AllPictures)
			require.Equal(t, wr, gr)
		})
	}
	job := jobOf("o1", "small-1", "small-2")
	r := resultOf(job, eng, h.p.scoreImages(t.Context(), fakeMsg(t, job), job, eng, radgate.AllPictures), radgate.AllPictures)
	require.Equal(t, radgate.OutcomeNotApplicable, r.Outcome)
	require.Contains(t, r.Reason, "image small-1: image outside the engine's intended use: 512 rows")
}

// largePart10 is a rows×cols 16-bit MONOCHROME2 DX in Explicit VR Little
// Endian, as a Part 10 file (2048² is 8 MiB).
func largePart10(tb testing.TB, rows, cols int) []byte {
	tb.Helper()
	pix := make([]byte, 2*rows*cols)
	for i := range rows * cols {
		binary.LittleEndian.PutUint16(pix[2*i:], uint16(i*40503>>3))
	}
	var elems []*dicom.Element
	add := func(t tag.Tag, v any) {
		e, err := dicom.NewElement(t, v)
		require.NoError(tb, err)
		elems = append(elems, e)
	}
	add(tag.MediaStorageSOPClassUID, []string{"1.2.840.10008.5.1.4.1.1.1.1"})
	add(tag.MediaStorageSOPInstanceUID, []string{"2.25.1"})
	add(tag.TransferSyntaxUID, []string{"1.2.840.10008.1.2.1"})
	add(tag.SOPClassUID, []string{"1.2.840.10008.5.1.4.1.1.1.1"})
	add(tag.SOPInstanceUID, []string{"2.25.1"})
	add(tag.Modality, []string{"DX"})
	add(tag.BodyPartExamined, []string{"CHEST"})
	add(tag.SamplesPerPixel, []int{1})
	add(tag.PhotometricInterpretation, []string{"MONOCHROME2"})
	add(tag.Rows, []int{rows})
	add(tag.Columns, []int{cols})
	add(tag.BitsAllocated, []int{16})
	add(tag.BitsStored, []int{16})
	add(tag.HighBit, []int{15})
	add(tag.PixelRepresentation, []int{0})
	add(tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: pix})
	var buf bytes.Buffer
	require.NoError(tb, dicom.Write(&buf, dicom.Dataset{Elements: elems}))
	return buf.Bytes()
}

// copyArchive serves every image as a fresh copy of one file, as a PACS
// client hands over a newly read body.
type copyArchive struct{ file []byte }

func (a *copyArchive) FindStudy(context.Context, radgate.StudyQuery) (*radgate.Study, error) {
	return nil, radgate.ErrStudyNotFound
}
func (a *copyArchive) RetrieveInstance(context.Context, string, string, string) ([]byte, error) {
	return bytes.Clone(a.file), nil
}

// headerEngine reads each file's header only (no pixels decoded) and gives
// it a varying probability; like the ONNX adapter, whose decoded image
// refers to the file's pixel bytes in place, its Render keeps the file.
type headerEngine struct{ n atomic.Int64 }

func (e *headerEngine) Info() radgate.EngineInfo { return (&scorer{}).Info() }
func (e *headerEngine) Modalities() []string     { return []string{"DX"} }
func (e *headerEngine) BodyParts() []string      { return []string{"CHEST"} }
func (e *headerEngine) Views() []string          { return nil }
func (e *headerEngine) Score(_ context.Context, files [][]byte) ([]radgate.ImageScore, error) {
	out := make([]radgate.ImageScore, len(files))
	for i, f := range files {
		m, err := inference.ReadHeader(f)
		if err != nil {
			out[i].Err = err
			continue
		}
		p := float64(e.n.Add(1)*37%101) / 100
		out[i] = radgate.ImageScore{SOPInstanceUID: m.SOPInstanceUID, Probability: p, Marked: true,
			Render: fakeDraw(true, []byte(fmt.Sprintf("PNG of %d bytes", len(f))), m.Columns, m.Rows)}
	}
	return out, nil
}

// heapPeak samples the heap (runtime/metrics, no stop-the-world) every
// 100µs until the returned function is called, which gives the highest
// values seen above the first: the bytes of heap objects, live or not yet
// collected (what the process holds), and the live heap as the latest GC
// marked it.
func heapPeak() func() (objects, live uint64) {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	type peaks struct{ objects, live uint64 }
	stop, res := make(chan struct{}), make(chan peaks)
	go func() {
		rtmetrics.Read(s)
		base := peaks{s[0].Value.Uint64(), s[1].Value.Uint64()}
		var top peaks
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			rtmetrics.Read(s)
			top.objects, top.live = max(top.objects, s[0].Value.Uint64()), max(top.live, s[1].Value.Uint64())
			select {
			case <-stop:
				res <- peaks{top.objects - min(top.objects, base.objects), top.live - min(top.live, base.live)}
				return
			case <-tick.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(stop)
		p := <-res
		return p.objects, p.live
	}
}

// BenchmarkScoreStageLargeStudies runs a burst of benchJobs concurrent jobs
// (inference.workers' default 4) of benchImages 2048² 16-bit images (8 MiB
// each; 50 is orders.max_instances_per_study's default) through the
// inference stage's retrieve-score-render part, the old all-at-once loop and
// the streaming one in the same run, and reports for each the peak heap
// above the baseline (old-/new-peak-MB/op: objects live or not yet
// collected, what the process holds), their ratio, the peak live heap as
// the GC marked it (old-/new-live-MB/op) and the time of each burst.
//
//	go test ./pipeline -run '^$' -bench BenchmarkScoreStageLargeStudies -benchtime 3x
func BenchmarkScoreStageLargeStudies(b *testing.B) {
	const benchJobs, benchImages = 4, 50
	arch := &copyArchive{file: largePart10(b, 2048, 2048)}
	eng := &headerEngine{}
	p, err := NewPipeline(Options{Topology: &broker.Topology{}, Source: arch, Engines: []radgate.Engine{eng},
		Sinks: map[string]radgate.Sink{"fhir": &recorder{}}, MaxStudyBytes: 1 << 40})
	require.NoError(b, err)
	msg := fakeMsg(b, Job{})
	type figures struct{ peakMB, liveMB, ms float64 }
	burst := func(score func(Job) studyScore) figures {
		runtime.GC()
		runtime.GC()
		stop := heapPeak()
		start := time.Now()
		var wg sync.WaitGroup
		for j := range benchJobs {
			job := Job{OrderID: fmt.Sprint("o", j), Engine: "eng-a", StudyInstanceUID: "9.9"}
			for i := range benchImages {
				job.Instances = append(job.Instances, JobInstance{SeriesInstanceUID: "9.9.1", SOPInstanceUID: fmt.Sprint("9.9.1.", i)})
			}
			wg.Go(func() {
				r := resultOf(job, eng, score(job), radgate.PictureHeatmap)
				if r.Outcome != radgate.OutcomeScored || len(r.HeatmapPNG) == 0 {
					b.Errorf("job %s: %s %s", job.OrderID, r.Outcome, r.Reason)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		objects, live := stop()
		return figures{float64(objects) / (1 << 20), float64(live) / (1 << 20), float64(elapsed.Microseconds()) / 1000}
	}
	var old, streaming figures
	add := func(sum *figures, f figures) {
		sum.peakMB, sum.liveMB, sum.ms = sum.peakMB+f.peakMB, sum.liveMB+f.liveMB, sum.ms+f.ms
	}
	for b.Loop() {
		add(&old, burst(func(job Job) studyScore { return scoreImagesAllAtOnce(p, b.Context(), job, eng) }))
		add(&streaming, burst(func(job Job) studyScore { return p.scoreImages(b.Context(), msg, job, eng, radgate.PictureHeatmap) }))
	}
	n := float64(b.N)
	b.ReportMetric(old.peakMB/n, "old-peak-MB/op")
	b.ReportMetric(streaming.peakMB/n, "new-peak-MB/op")
	b.ReportMetric(old.peakMB/streaming.peakMB, "old/new-peak")
	b.ReportMetric(old.liveMB/n, "old-live-MB/op")
	b.ReportMetric(streaming.liveMB/n, "new-live-MB/op")
	b.ReportMetric(old.ms/n, "old-ms/op")
	b.ReportMetric(streaming.ms/n, "new-ms/op")
}
