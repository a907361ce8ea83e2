package main

// End-to-end proof of the order-driven pull from a DIMSE-only PACS (issue
// 13, item 3): radgate serve with pacs.dimse pointing at the second
// Orthanc (no DICOMweb), an order posted as a FHIR ServiceRequest, the
// study found with C-FIND and retrieved with C-MOVE to radgate's own
// Storage SCP (or C-GET), scored, and its DiagnosticReport on the FHIR
// server.

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// dimsePACSREST calls the DIMSE-only Orthanc's REST API, failing unless it
// answers 2xx.
func dimsePACSREST(t *testing.T, p testenv.DIMSEOnlyPACS, method, path string, body []byte) {
	t.Helper()
	rq, err := http.NewRequestWithContext(t.Context(), method, p.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	rq.SetBasicAuth(p.Username, p.Password)
	rsp, err := http.DefaultClient.Do(rq)
	require.NoError(t, err)
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	require.Less(t, rsp.StatusCode, 300, "%s %s: %s", method, path, b)
}

// registerRadgate makes radgate's AE title (at 127.0.0.1:port) known to the
// DIMSE-only Orthanc, as its operator would: a caller it answers and a
// C-MOVE destination.
func registerRadgate(t *testing.T, p testenv.DIMSEOnlyPACS, name, aet string, port int) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"AET": aet, "Host": "127.0.0.1", "Port": port})
	dimsePACSREST(t, p, "PUT", "/modalities/"+name, b)
	t.Cleanup(func() {
		rq, _ := http.NewRequest("DELETE", p.URL+"/modalities/"+name, nil)
		rq.SetBasicAuth(p.Username, p.Password)
		if rsp, err := http.DefaultClient.Do(rq); err == nil {
			rsp.Body.Close()
		}
	})
}

// TestDIMSEOnlyPACSOrderPulled: for retrieve c-move and c-get, a study
// stored only in the DIMSE-only Orthanc is scored on its order and its
// DiagnosticReport written; the retrieved images make no second order.
func TestDIMSEOnlyPACSOrderPulled(t *testing.T) {
	dp := testenv.DIMSEPACS(t)
	host, portStr, err := net.SplitHostPort(dp.Addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	for _, method := range []string{config.RetrieveCMove, config.RetrieveCGet} {
		t.Run(method, func(t *testing.T) {
			aet := "RG_E2E_" + strings.ToUpper(strings.TrimPrefix(method, "c-"))
			scpPort := anyFreePort(t)
			r := lcRig(t, sharedPeers(t), func(c *config.Config) {
				if method == config.RetrieveCMove {
					c.DIMSE.Listen = "127.0.0.1:" + strconv.Itoa(scpPort)
				}
				c.DIMSE.AETitle = aet
				c.DIMSE.AccessionSystem = demo.AccessionSystem
				c.PACS.DIMSE = &config.PACSDIMSE{Host: host, Port: port, CalledAE: dp.AETitle, Retrieve: method}
			})
			registerRadgate(t, dp, "e2e-"+method, aet, scpPort)
			o := makeOrders(t, 1)[0]
			dimsePACSREST(t, dp, "POST", "/instances", o.data)

			p := r.start()
			submit(t, p, o)
			st := waitState(t, p, o, 2*time.Minute, radgate.StateDelivered)
			require.Equal(t, 1, st.Study.Scored, "scored on the study's image")
			require.Equal(t, 1, st.Engines[config.DefaultEngine].Revision, "scored once")
			require.Len(t, st.Sources, 1, "the order is the ServiceRequest alone; the retrieved images made no order: %v", st.Sources)
			dr, _ := r.report(t, o)
			require.Equal(t, "final", dr["status"])

			logs := p.logs.String()
			want := map[string]string{config.RetrieveCMove: "C-MOVE", config.RetrieveCGet: "C-GET"}[method]
			require.Contains(t, logs, "dimse: study retrieved", "retrieved over DIMSE")
			require.Contains(t, logs, "method="+want)
			require.Equal(t, 1, strings.Count(logs, "dimse: study retrieved"), "the study is retrieved once")
			require.NotContains(t, logs, o.name, "no patient name in the logs")
			require.Zero(t, invalidTransitions(t, p))
		})
	}
}
