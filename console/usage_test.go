package console

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/billing"
)

type fakeUsage map[string][]billing.UsageRow

func (f fakeUsage) Month(_ context.Context, month string) ([]billing.UsageRow, error) {
	return f[month], nil
}

func TestUsagePageAndCSV(t *testing.T) {
	u := fakeUsage{"2026-11": {{Facility: "kids", Engine: "cxr", Analyses: 7}, {Facility: "north, \"east\"", Engine: "cxr", Analyses: 3}},
		"2026-12": {{Facility: "kids", Engine: "cxr", Analyses: 2}}}
	e := areaEnv(t, Options{Usage: u})
	e.signIn(t, "tok-viewer")

	r, body := e.get(t, "/console/usage")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, `value="2026-12"`, "the current month by default")
	assert.Contains(t, body, `<td class="num">2</td>`)

	_, body = e.get(t, "/console/usage?month=2026-11")
	assert.Contains(t, body, "<td>north, &#34;east&#34;</td>")
	assert.Contains(t, body, `<tfoot><tr><th scope="row" colspan="3">Total</th><td class="num">10</td>`)
	assert.Contains(t, body, `href="/console/usage.csv?month=2026-11"`)

	for _, facility := range []string{"", "kids", "nowhere"} {
		r, got := e.get(t, "/console/usage.csv?month=2026-11&facility="+facility)
		require.Equal(t, http.StatusOK, r.StatusCode)
		assert.Equal(t, "text/csv; charset=utf-8", r.Header.Get("Content-Type"))
		var want bytes.Buffer
		require.NoError(t, billing.WriteUsage(&want, "2026-11", billing.OfFacility(u["2026-11"], facility), billing.UsageCSV))
		assert.Equal(t, want.String(), got, "the bytes of radgate usage --csv --facility %q", facility)
	}

	r, _ = e.get(t, "/console/usage?month=2026-13")
	assert.Equal(t, http.StatusBadRequest, r.StatusCode)
}
