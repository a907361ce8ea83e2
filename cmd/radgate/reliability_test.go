package main

// Tests that break things: radgate serve runs as a real process (see
// reliability_harness_test.go) and is killed, paused behind, starved of its
// PACS, stopped with SIGTERM, and given what exceeds its limits. Each test
// asserts what must still hold: every order ends visibly, each with exactly
// one DiagnosticReport, and nothing about the patient in the logs.
// RELIABILITY.md lists them with measured results.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/faultproxy"
	"github.com/radgate/radgate/internal/testenv"
)

// TestReliabilityKill9MidFlight: 200 orders, radgate killed with SIGKILL
// after some (not all) results are delivered, restarted on the same
// data_dir: every order ends delivered with exactly one DiagnosticReport.
// Long (about a minute and a half: the orders scored, plus JetStream's ack
// wait before it redelivers what the killed process held).
func TestReliabilityKill9MidFlight(t *testing.T) {
	begin := time.Now()
	ctx := t.Context()
	r := newRig(t, sharedPeers(t), nil)
	orders := makeOrders(t, 200)
	r.store(ctx, orders...)
	p := r.start()

	// The EHR: posts every order, resending what is refused or unanswered
	// (radgate down) to whichever radgate is up.
	var base atomic.Pointer[string]
	base.Store(&p.url)
	submitted := make(chan error, 1)
	go func() {
		for _, o := range orders {
			for {
				err := o.post(ctx, *base.Load())
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					submitted <- err
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		submitted <- nil
	}()

	waitFor(t, 3*time.Minute, "30 results delivered before the kill", func() bool { return p.delivered(ctx) >= 30 })
	atKill := p.delivered(ctx)
	p.kill9(t)
	killedAt := time.Now()
	require.Less(t, atKill, len(orders), "killed while orders were in flight")

	p2 := r.start()
	base.Store(&p2.url)
	require.NoError(t, <-submitted)
	waitTerminal(t, p2, 5*time.Minute, orders...)
	recovered := time.Since(killedAt)
	r.requireOneReportEach(t, orders...)
	t.Logf("kill -9 after %d of %d delivered; all %d delivered, one DiagnosticReport each, %s after the kill; test %s",
		atKill, len(orders), len(orders), recovered.Round(time.Second), time.Since(begin).Round(time.Second))
}

// TestReliabilitySIGTERMDrains: SIGTERM while orders are in flight: radgate
// exits 0 within its drain deadline (30 s) after finishing and
// acknowledging what it had started, and the restarted process does the
// rest: no order lost, none scored or delivered twice.
func TestReliabilitySIGTERMDrains(t *testing.T) {
	begin := time.Now()
	ctx := t.Context()
	r := newRig(t, sharedPeers(t), nil)
	orders := makeOrders(t, 60)
	r.store(ctx, orders...)
	p := r.start()
	submit(t, p, orders...)
	waitFor(t, 2*time.Minute, "10 results delivered", func() bool { return p.delivered(ctx) >= 10 })
	atTerm := p.delivered(ctx)
	took := p.terminate(t, 45*time.Second)
	require.NoError(t, p.err, "a graceful stop exits 0")
	logs := p.logs.String()
	require.Contains(t, logs, `msg=stopped`)
	require.NotContains(t, logs, "drain incomplete", "drained within the deadline")
	require.Less(t, atTerm, len(orders), "stopped while orders were in flight")

	p2 := r.start()
	waitTerminal(t, p2, 3*time.Minute, orders...)
	r.requireOneReportEach(t, orders...)
	// What the first process started it finished and acknowledged: the
	// second never handles it again (a message left unacknowledged would
	// be routed, scored or delivered a second time).
	both := logs + p2.logs.String()
	for _, line := range []string{`msg="order routed"`, `msg="result published"`, `msg="result delivered" component=pipeline`} {
		require.Equal(t, len(orders), strings.Count(both, line), "%s once per order across both runs", line)
	}
	t.Logf("SIGTERM after %d of %d delivered; exited 0 in %s; after restart all delivered once; test %s",
		atTerm, len(orders), took.Round(10*time.Millisecond), time.Since(begin).Round(time.Second))
}

// TestReliabilityFHIRServerPaused30s: the FHIR server (a private instance)
// is paused with SIGSTOP for 30 s while results are being delivered: the
// deliveries time out and are retried, and once it resumes every result is
// written, exactly once.
func TestReliabilityFHIRServerPaused30s(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	ctx := t.Context()
	fhirProc, fhirURL := privateFHIR(t)
	r := newRig(t, peers{pacs: testenv.Orthanc(t), fhir: fhirURL}, func(c *config.Config) {
		c.FHIR.Timeout = config.Duration(3 * time.Second)
	})
	orders := makeOrders(t, 40)
	r.store(ctx, orders...)
	p := r.start()
	submit(t, p, orders...)
	waitFor(t, 2*time.Minute, "5 results delivered", func() bool { return p.delivered(ctx) >= 5 })

	fhirProc.signal(t, syscall.SIGSTOP)
	stopped := time.Now()
	atStop := p.delivered(ctx)
	waitFor(t, 25*time.Second, "radgate retrying deliveries", func() bool {
		return strings.Contains(p.logs.String(), "delivery failed; will retry")
	})
	time.Sleep(time.Until(stopped.Add(30 * time.Second)))
	duringPause := p.delivered(ctx) - atStop
	fhirProc.signal(t, syscall.SIGCONT)
	resumed := time.Now()

	waitTerminal(t, p, 3*time.Minute, orders...)
	recovered := time.Since(resumed)
	require.Less(t, atStop, len(orders), "paused while results were being delivered")
	require.LessOrEqual(t, duringPause, 4, "nothing but what was in flight is delivered while the server is paused")
	r.requireOneReportEach(t, orders...)
	t.Logf("FHIR server paused 30 s after %d of %d delivered (%d retries logged); all delivered once, %s after SIGCONT; test %s",
		atStop, len(orders), strings.Count(p.logs.String(), "delivery failed; will retry"),
		recovered.Round(100*time.Millisecond), time.Since(begin).Round(time.Second))
}

// TestReliabilityPACSFaults: a private Orthanc behind internal/faultproxy.
// A study not there yet (404) is waited for; 503s, a truncated multipart
// body and a paused PACS (requests time out) are retried until scored; a
// PACS answering 500 to every try ends the order failed, with the reason,
// once orders.study_wait_window has passed.
func TestReliabilityPACSFaults(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	ctx := t.Context()
	orthanc, pacs := privateOrthanc(t)
	px, err := faultproxy.New(pacs.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = px.Close() })
	const window = 8 * time.Second
	r := newRig(t, peers{pacs: pacs, fhir: testenv.FHIR(t).URL, radgatePACS: px.URL() + "/dicom-web"}, func(c *config.Config) {
		c.Orders.StudyWaitWindow = config.Duration(window)
		c.PACS.Timeout = config.Duration(2 * time.Second)
	})
	orders := makeOrders(t, 5)
	notYet, unavailable, truncated, paused, permanent := orders[0], orders[1], orders[2], orders[3], orders[4]
	px.SetRules(
		&faultproxy.Rule{Name: "503", Contains: "AccessionNumber=" + unavailable.meta.AccessionNumber, Status: http.StatusServiceUnavailable, Times: 3},
		&faultproxy.Rule{Name: "truncated", Method: http.MethodGet, Contains: "/instances/" + truncated.meta.SOPInstanceUID, Truncate: true, Times: 2},
		&faultproxy.Rule{Name: "permanent", Contains: "AccessionNumber=" + permanent.meta.AccessionNumber, Status: http.StatusInternalServerError},
	)
	r.store(ctx, unavailable, truncated, paused, permanent)
	p := r.start()

	permanentPosted := time.Now()
	submit(t, p, permanent, notYet, unavailable, truncated)
	retried := func(o *order) func() bool {
		return func() bool {
			for _, l := range strings.Split(p.logs.String(), "\n") {
				// A study not there (or a PACS not answering) makes the
				// order wait; a failed image retrieval is retried.
				if (strings.Contains(l, "will retry") || strings.Contains(l, "the order waits")) && strings.Contains(l, "order="+o.id) {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, 30*time.Second, "the study not in the PACS yet is retried", retried(notYet))
	r.store(ctx, notYet)
	waitTerminal(t, p, 2*time.Minute, notYet, unavailable, truncated)

	// The PACS hangs: every request times out (pacs.timeout 2 s).
	orthanc.signal(t, syscall.SIGSTOP)
	pausedAt := time.Now()
	submit(t, p, paused)
	waitFor(t, 30*time.Second, "a timed-out PACS request is retried", retried(paused))
	orthanc.signal(t, syscall.SIGCONT)
	pausedFor := time.Since(pausedAt)
	waitTerminal(t, p, 2*time.Minute, paused)

	waitTerminal(t, p, window+time.Minute, permanent)
	failedAfter := time.Since(permanentPosted)
	for _, o := range []*order{notYet, unavailable, truncated, paused} {
		require.Equal(t, radgate.StateDelivered, o.status.State, "%s: %s", o.file, o.status.Reason)
	}
	r.requireOneReportEach(t, notYet, unavailable, truncated, paused)
	require.Equal(t, 3, px.Hits("503"), "the 503s were answered and retried")
	require.Equal(t, 2, px.Hits("truncated"), "both truncated bodies were retried")
	require.Equal(t, radgate.StateFailed, permanent.status.State)
	require.Contains(t, permanent.status.Reason, "500 Internal Server Error")
	require.Contains(t, permanent.status.Reason, "study not retrieved from the PACS")
	require.NotContains(t, permanent.status.Reason, "/studies", "the reason names no PACS URL path")
	require.GreaterOrEqual(t, failedAfter, window, "failed only once the wait window had passed")
	require.GreaterOrEqual(t, px.Hits("permanent"), 3, "retried within the window")
	// The study never came back, so no route was chosen: the answer is the
	// router's, to the unmatched destinations (the default's: fhir).
	rep := permanent.status.Engines[radgate.RouterEngine].Report
	require.True(t, strings.HasPrefix(rep, "Task/"), "a failed order is answered with a Task, got %q", rep)
	t.Logf("404→stored→delivered; 503×%d, truncated×%d, PACS paused %s: all delivered once; permanent 500 (%d tries) failed after %s (window %s); test %s",
		px.Hits("503"), px.Hits("truncated"), pausedFor.Round(100*time.Millisecond), px.Hits("permanent"),
		failedAfter.Round(100*time.Millisecond), window, time.Since(begin).Round(time.Second))
}

// TestReliabilityLimits: what exceeds a limit is refused with an error
// naming the limit, and never hangs: an intake body over
// orders.max_body_bytes (413), a study with more images than
// orders.max_instances_per_study, an image over pacs.max_instance_bytes,
// and an image over 8192 × 8192 pixels (failed orders, with the reason).
func TestReliabilityLimits(t *testing.T) {
	begin := time.Now()
	ctx := t.Context()
	r := newRig(t, sharedPeers(t), func(c *config.Config) {
		c.Orders.MaxBodyBytes = 64 << 10
		c.Orders.MaxInstancesPerStudy = 3
		c.PACS.MaxInstanceBytes = 40000
	})
	p := r.start()

	t.Run("request body over orders.max_body_bytes", func(t *testing.T) {
		o := makeOrders(t, 1)[0]
		body := o.serviceRequest()
		big := append(bytes.TrimSuffix(body, []byte("}")), []byte(`,"note":[{"text":"`+strings.Repeat("x", 70<<10)+`"}]}`)...)
		code, resp, err := post(ctx, p.url, big)
		require.NoError(t, err)
		require.Equal(t, http.StatusRequestEntityTooLarge, code)
		require.Contains(t, string(resp), `"resourceType":"OperationOutcome"`)
		require.Contains(t, string(resp), "65536", "the OperationOutcome names the limit")
	})

	orders := makeOrders(t, 1)
	many := orders[0]
	files := [][]byte{many.data}
	for range 3 { // three more images of the same study (clones of the same file)
		files = append(files, intoStudy(makeOrders(t, 1)[0], many))
	}
	for _, f := range files {
		_, err := r.pacs.Store(ctx, f)
		require.NoError(t, err)
	}

	kvSrc, err := os.ReadFile(testenv.Testdata("kermany224-val-dicom", "KV0000.dcm"))
	require.NoError(t, err)
	kv, kvMeta, err := demo.Clone(kvSrc, int(seeds.Add(1)%10_000_000))
	require.NoError(t, err)
	require.Greater(t, len(kv), 40000)
	heavy := orderFor(t, "KV0000.dcm", kv, kvMeta)

	wide := makeOrders(t, 1)[0]
	wide.file = "wide.dcm"
	wide.data = widen(t, wide.data, 8193, 4)
	r.store(ctx, heavy, wide)

	submit(t, p, many, heavy, wide)
	waitTerminal(t, p, time.Minute, many, heavy, wide)
	for _, tc := range []struct {
		o    *order
		want []string
	}{
		{many, []string{"4 images", "limit of 3", "orders.max_instances_per_study"}},
		{heavy, []string{"larger than the configured limit", "limit 40000"}},
		{wide, []string{"8193 × 4 pixels", "8192 × 8192 limit"}},
	} {
		require.Equal(t, radgate.StateFailed, tc.o.status.State, "%s: %s", tc.o.file, tc.o.status.Reason)
		for _, w := range tc.want {
			require.Contains(t, tc.o.status.Reason, w, tc.o.file)
		}
		require.True(t, strings.HasPrefix(tc.o.status.Engines[config.DefaultEngine].Report, "Task/"), "answered with a Task")
	}
	t.Logf("413 naming 65536; 4 images > 3; %d bytes > 40000; 8193 × 4 > 8192: failed with the limit named; test %s",
		len(kv), time.Since(begin).Round(time.Second))
}

// TestReliabilityNoPatientDataInLogs: orders whose patients have known
// names and identifiers — in the DICOM header (PatientName, PatientID) and
// in the FHIR ServiceRequest (subject display and MRN) — go through scoring,
// a study never found, a bad request and an oversize request. radgate's
// whole output (stdout and stderr) names the orders but never a patient.
func TestReliabilityNoPatientDataInLogs(t *testing.T) {
	begin := time.Now()
	ctx := t.Context()
	r := newRig(t, sharedPeers(t), func(c *config.Config) {
		c.Orders.StudyWaitWindow = config.Duration(3 * time.Second)
		c.Orders.MaxBodyBytes = 64 << 10
	})
	orders := makeOrders(t, 4)
	for i, o := range orders {
		o.name = fmt.Sprintf("Qzwfa Testperson%02d", i)
		o.mrn = fmt.Sprintf("MRNQ%06d", int(seeds.Add(1)%1_000_000))
	}
	scored, never := orders[:3], orders[3]
	r.store(ctx, scored...)
	p := r.start()
	submit(t, p, orders...)

	// A ServiceRequest without an accession number (400) and an oversize
	// one (413), both naming the patient.
	sr := scored[0].serviceRequestMap()
	delete(sr, "identifier")
	bad, err := json.Marshal(sr)
	require.NoError(t, err)
	code, _, err := post(ctx, p.url, bad)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, code)
	big := append(bytes.TrimSuffix(scored[1].serviceRequest(), []byte("}")), []byte(`,"note":[{"text":"`+strings.Repeat(scored[1].name+" ", 8000)+`"}]}`)...)
	code, _, err = post(ctx, p.url, big)
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)

	waitTerminal(t, p, 2*time.Minute, orders...)
	for _, o := range scored {
		require.Equal(t, radgate.StateDelivered, o.status.State, o.status.Reason)
	}
	require.Equal(t, radgate.StateFailed, never.status.State)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	<-p.done

	logs := p.logs.String()
	for _, o := range orders {
		require.Contains(t, logs, o.id, "the log names the order")
		dicomName := string(bytes.TrimRight(dicomString(t, o.data, 0x0010, 0x0010), " \x00"))
		dicomID := string(bytes.TrimRight(dicomString(t, o.data, 0x0010, 0x0020), " \x00"))
		require.NotEmpty(t, dicomName)
		for _, secret := range []string{o.name, o.mrn, dicomName, dicomID, strings.ReplaceAll(dicomName, "^", " ")} {
			require.NotContains(t, logs, secret, "patient data in radgate's log")
		}
	}
	t.Logf("%d log lines, no patient name or identifier; test %s", strings.Count(logs, "\n"), time.Since(begin).Round(time.Second))
}

// orderFor makes an order for a file (its accession number keyed).
func orderFor(t *testing.T, name string, data []byte, m *inference.Meta) *order {
	t.Helper()
	o := &order{file: name, data: data, meta: m, name: "Synthetic PMV limit", mrn: "PMV-0limit"}
	if m != nil {
		key, err := radgate.OrderKey(radgate.OrderEvent{Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: m.AccessionNumber}})
		require.NoError(t, err)
		o.id = radgate.OrderID(key)
	}
	return o
}

// intoStudy returns o's image (its own SOP Instance UID, from a fresh clone
// number) moved into the study, series and accession of into. Both are
// clones, so the replaced values have the same lengths.
func intoStudy(o, into *order) []byte {
	b := o.data
	for _, r := range [][2]string{
		{o.meta.StudyInstanceUID, into.meta.StudyInstanceUID},
		{o.meta.SeriesInstanceUID, into.meta.SeriesInstanceUID},
		{o.meta.AccessionNumber, into.meta.AccessionNumber},
	} {
		b = bytes.ReplaceAll(b, []byte(r[0]), []byte(r[1]))
	}
	return b
}

// widen rewrites a 28 × 28, 8-bit, explicit VR little endian file (Pixel
// Data last) into a cols × rows image of the same study.
func widen(t *testing.T, file []byte, cols, rows int) []byte {
	t.Helper()
	out := bytes.Clone(file)
	setUS := func(elem uint16, v int) {
		tagBytes := []byte{0x28, 0x00, byte(elem), byte(elem >> 8), 'U', 'S', 2, 0}
		i := bytes.Index(out, tagBytes)
		require.GreaterOrEqual(t, i, 0, "element (0028,%04x)", elem)
		binary.LittleEndian.PutUint16(out[i+8:], uint16(v))
	}
	setUS(0x0010, rows)
	setUS(0x0011, cols)
	pd := []byte{0xe0, 0x7f, 0x10, 0x00, 'O', 'B', 0, 0}
	i := bytes.LastIndex(out, pd)
	require.GreaterOrEqual(t, i, 0, "Pixel Data")
	n := cols * rows
	out = out[:i+12]
	binary.LittleEndian.PutUint32(out[i+8:], uint32(n))
	px := make([]byte, n)
	for k := range px {
		px[k] = byte(k * 7)
	}
	return append(out, px...)
}

// dicomString returns the value of a short-string element of an explicit
// VR little endian file (2-byte length form).
func dicomString(t *testing.T, file []byte, group, elem uint16) []byte {
	t.Helper()
	tagBytes := []byte{byte(group), byte(group >> 8), byte(elem), byte(elem >> 8)}
	i := bytes.Index(file[132:], tagBytes)
	require.GreaterOrEqual(t, i, 0)
	i += 132
	n := int(binary.LittleEndian.Uint16(file[i+6:]))
	return file[i+8 : i+8+n]
}
