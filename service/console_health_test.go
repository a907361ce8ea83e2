package service

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// The console's Health page and live updates through serve on the real
// peers: an order filed at the intake streams its states to
// /console/events up to delivered; the Health page then lists the PACS
// reachable, the stage queues and the result in the last hour; an open
// stream does not hold up serve's stop.
func TestConsoleHealthAndLiveOrders(t *testing.T) {
	cfg := testConfig(t)
	pacs := testenv.Orthanc(t)
	cfg.PACS.Username = pacs.Username
	t.Setenv("RADGATE_CONSOLE_PACS_PASSWORD", pacs.Password)
	cfg.PACS.PasswordEnv = "RADGATE_CONSOLE_PACS_PASSWORD"
	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("ops tok-ops viewer,operator\n"), 0o600))
	cfg.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensFile: tokens}
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, cfg, Options{Registry: registry(t), Ready: ready, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("not ready in 60 s")
	}
	base := "http://" + addr
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := c.PostForm(base+"/console/signin", url.Values{"token": {"tok-ops"}})
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusSeeOther, r.StatusCode)

	// The stream is open before the order is filed.
	sctx, closeStream := context.WithCancel(t.Context())
	defer closeStream()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, base+"/console/events", nil)
	r, err = c.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "text/event-stream", r.Header.Get("Content-Type"))
	events := make(chan string, 256)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			events <- sc.Text()
		}
	}()
	require.Equal(t, "retry: 3000", <-events, "the stream is open")

	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	data, _, err := demo.Clone(src, 93_000+rand.IntN(6_000)) // a study of its own in the shared PACS
	require.NoError(t, err)
	pc, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	require.NoError(t, err)
	env := &demo.Env{RadgateURL: base, PACS: pc, HTTP: &http.Client{Transport: bearer{token: "tok-ops", next: http.DefaultTransport}}}
	cs := []*demo.Case{{File: "console-health.dcm", Data: data, Path: demo.ViaBundle, Patient: "Zyxwa Consolehealth"}}
	require.NoError(t, env.LoadImages(t.Context(), cs))
	require.NoError(t, env.Order(t.Context(), cs))
	id := cs[0].OrderID

	var states []radgate.OrderState
	deadline := time.After(90 * time.Second)
	for len(states) == 0 || states[len(states)-1] != radgate.StateDelivered {
		select {
		case l, ok := <-events:
			require.True(t, ok, "the stream ended; states so far %v", states)
			if !strings.HasPrefix(l, "data: ") {
				continue
			}
			assert.NotContains(t, l, "Zyxwa", "no patient name in an event")
			var ch pipeline.OrderChange
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &ch))
			if ch.Order == id {
				states = append(states, ch.State)
			}
		case <-deadline:
			st, _ := env.OrderStatus(t.Context(), id)
			t.Fatalf("order %s not delivered on the stream in 90 s: states %v, order %s %s", id, states, st.State, st.Reason)
		}
	}
	assert.Equal(t, radgate.StateReceived, states[0], "every state from the first: %v", states)
	assert.Contains(t, states, radgate.StateRouted)

	// The Health page: the PACS reachable, the stage queues, the result in
	// the last hour (recorded as the inference stage finishes with it).
	var body string
	require.Eventually(t, func() bool {
		r, err := c.Get(base + "/console/health")
		require.NoError(t, err)
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		require.Equal(t, http.StatusOK, r.StatusCode)
		body = string(b)
		m := regexp.MustCompile(`<strong>(\d+)</strong> results?`).FindStringSubmatch(body)
		n, _ := strconv.Atoi(m[1])
		return n > 0
	}, 10*time.Second, 100*time.Millisecond, "a result in the last hour")
	assert.Contains(t, body, "connect pacs "+cfg.PACS.DICOMwebURL+` (QIDO-RS)</td><td class="ok">yes`)
	assert.Contains(t, body, `nats: radgate&#39;s own connection (JetStream)</td><td class="ok">yes`)
	assert.Regexp(t, `<th scope="row">inference</th><td><code>RADGATE_JOBS</code> / <code>inference</code></td><td class="num">0</td>`, body)
	assert.Regexp(t, `<th scope="row">deliver-fhir</th>`, body)
	assert.Contains(t, body, `<strong class="dlq">0</strong> messages`)
	assert.Regexp(t, `<th scope="row">`+regexp.QuoteMeta(cfgEngine(t, body))+`</th><td>scored</td><td class="num">[1-9]`, body)
	assert.Contains(t, body, `<svg class="bars"`)

	r, err = c.Get(base + "/console/orders")
	require.NoError(t, err)
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	assert.Contains(t, string(b), `<tr data-order="`+id+`">`, "the list's rows carry their order for live.js")
	assert.NotContains(t, logs.String(), "Zyxwa", "no patient name in the logs")

	// A stream still open does not hold up the stop.
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(40 * time.Second):
		t.Fatal("no stop in 40 s")
	}
	assert.Less(t, time.Since(start), 15*time.Second, "the open event stream ended with the listener")
}

// cfgEngine is the engine named in the page's results table.
func cfgEngine(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`<table class="hour-results">[\s\S]*?<th scope="row">([^<]+)</th>`).FindStringSubmatch(body)
	require.NotNil(t, m, "a results table")
	return m[1]
}
