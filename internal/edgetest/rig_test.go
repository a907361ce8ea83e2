package edgetest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/faultproxy"
	"github.com/radgate/radgate/internal/testenv"
)

// serveRig is issue 16's serve-level rig: a three-node hub cluster
// (startHub), two radgate serves in role hub running the real engine (the
// default one of models/, as serve runs it), and one radgate serve in role
// edge per site, linked to a hub node through its own fault proxy, with
// the hospital around it (siteEnv: the shared Orthanc as its PACS, the
// FHIR server as its destination). TestServeHubAndEdges and
// BenchmarkBurstRealInference run on it.
type serveRig struct {
	sites   []string
	h       *hub
	hubs    []*served
	edges   map[string]*served
	envs    map[string]*demo.Env
	proxies map[string]*faultproxy.TCP
}

// startServeRig starts the rig for sites: the edges, then the two hub
// radgates at once, which declare the hub's sources of the edges' jobs
// from their facilities. adjust, when not nil, changes each serve's
// configuration before it starts, by name ("edge-site-a", "hub-1", …).
// Everything stops when the test ends.
func startServeRig(tb testing.TB, adjust func(name string, cfg *config.Config), sites ...string) *serveRig {
	tb.Helper()
	start := time.Now()
	r := &serveRig{sites: sites, h: startHub(tb, sites...), edges: map[string]*served{}, envs: map[string]*demo.Env{},
		proxies: map[string]*faultproxy.TCP{}}
	for i, f := range sites {
		cfg, proxy := edgeServeConfig(tb, r.h, f, i%len(r.h.cluster.Nodes), sites...)
		if adjust != nil {
			adjust("edge-"+f, &cfg)
		}
		r.edges[f], r.proxies[f] = startServe(tb, "edge-"+f, cfg), proxy
		r.envs[f] = siteEnv(tb, r.edges[f])
	}
	var waits []func() *served
	for i := range 2 {
		name := fmt.Sprintf("hub-%d", i+1)
		cfg := hubServeConfig(tb, r.h, sites...)
		if adjust != nil {
			adjust(name, &cfg)
		}
		waits = append(waits, launchServe(tb, name, cfg))
	}
	for _, wait := range waits {
		r.hubs = append(r.hubs, wait())
	}
	tb.Logf("hub cluster, %d hub radgates and %d edge radgates up in %v", len(r.hubs), len(sites), time.Since(start).Round(time.Millisecond))
	return r
}

// newCases are n new studies cloned from a 1024² radiograph, stored in
// env's PACS and deleted from it when the test ends.
func newCases(tb testing.TB, env *demo.Env, n int) []*demo.Case {
	tb.Helper()
	return newStudies(tb, "dx-chest-implicit-le-8bit.dcm", n).cases(env, n)
}

// studies makes distinct studies from one radiograph of testdata/cxr-dicom
// (demo.Clone: new study, series and instance UIDs and accession number,
// numbered from a random base so that runs never meet on the shared PACS
// and FHIR server) and stores them in the PACS. Every study it stored is
// deleted from Orthanc when the test ends.
type studies struct {
	tb   testing.TB
	file string
	src  []byte
	next atomic.Int64
	end  int64

	mu     sync.Mutex
	stored []string // study instance UIDs
}

// cloneLimit is the largest clone number demo.Clone fits in the samples'
// UIDs (a six-digit last component: a kind digit and five).
const cloneLimit = 99_999

// newStudies prepares up to most studies from file.
func newStudies(tb testing.TB, file string, most int) *studies {
	tb.Helper()
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", file))
	require.NoError(tb, err)
	require.Less(tb, most, cloneLimit/2, "too many studies from one radiograph")
	base, err := rand.Int(rand.Reader, big.NewInt(int64(cloneLimit-most)))
	require.NoError(tb, err)
	s := &studies{tb: tb, file: file, src: src, end: base.Int64() + int64(most)}
	s.next.Store(base.Int64())
	pacs := testenv.Orthanc(tb)
	tb.Cleanup(func() {
		s.mu.Lock()
		uids := s.stored
		s.mu.Unlock()
		if err := deleteStudies(pacs, uids); err != nil {
			tb.Errorf("deleting the %d studies stored in Orthanc: %v", len(uids), err)
			return
		}
		tb.Logf("deleted the %d studies stored in Orthanc", len(uids))
	})
	return s
}

// cases are n new studies stored in env's PACS (four at a time), one case
// each, ordered as a transaction Bundle.
func (s *studies) cases(env *demo.Env, n int) []*demo.Case {
	s.tb.Helper()
	cases, err := s.tryCases(env, n)
	require.NoError(s.tb, err)
	return cases
}

// tryCases is cases for a goroutine other than the test's: an error
// instead of a failed test.
func (s *studies) tryCases(env *demo.Env, n int) ([]*demo.Case, error) {
	cases := make([]*demo.Case, n)
	for i := range cases {
		k := s.next.Add(1)
		if k > s.end {
			return nil, fmt.Errorf("more studies from %s than the %d prepared for", s.file, s.end)
		}
		data, m, err := demo.Clone(s.src, int(k))
		if err != nil {
			return nil, err
		}
		cases[i] = &demo.Case{File: s.file, Data: data, Path: demo.ViaBundle}
		s.mu.Lock()
		s.stored = append(s.stored, m.StudyInstanceUID)
		s.mu.Unlock()
	}
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			var err error
			for i := w; i < n && err == nil; i += 4 {
				err = env.LoadImages(context.Background(), cases[i:i+1])
			}
			errs <- err
		}()
	}
	var first error
	for range 4 {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	for _, c := range cases {
		c.Data = nil // stored: the case need not hold the image any more
	}
	return cases, first
}

// deleteStudies deletes the studies from Orthanc through its REST API
// (POST /tools/lookup of each study UID, DELETE of the study it names), four
// at a time; a study Orthanc does not know is skipped.
func deleteStudies(pacs testenv.PACS, uids []string) error {
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(method, path, body string) ([]byte, error) {
		req, err := http.NewRequest(method, pacs.URL+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(pacs.Username, pacs.Password)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
		}
		return b, nil
	}
	del := func(uid string) error {
		b, err := do(http.MethodPost, "/tools/lookup", uid)
		if err != nil {
			return err
		}
		var found []struct{ ID, Type string }
		if err := json.Unmarshal(b, &found); err != nil {
			return fmt.Errorf("/tools/lookup of study %s: %w", uid, err)
		}
		for _, f := range found {
			if f.Type == "Study" {
				if _, err := do(http.MethodDelete, "/studies/"+f.ID, ""); err != nil {
					return err
				}
			}
		}
		return nil
	}
	work := make(chan string)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			var first error
			for uid := range work {
				if err := del(uid); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for _, uid := range uids {
		work <- uid
	}
	close(work)
	var first error
	for range 4 {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
