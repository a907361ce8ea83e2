package consoletest

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

// The orders list follows the pipeline live (server-sent events and
// static/live.js), without a reload: orders filed before their images
// wait on the list; the images are stored; every row turns delivered on
// the same page. An order filed after the page loaded brings the note that
// offers a reload.
func TestLiveUpdatesInTheBrowser(t *testing.T) {
	chrome := testenv.Chromium(t)
	rg := startServe(t, nil)
	b := newBrowser(t, chrome, rg.url)
	b.signIn(rg.tokens[operator])
	b.waitText("h1", "Orders")

	// Orders first: their studies are not in the PACS yet.
	ctx := t.Context()
	cases := newCases(t)
	for _, c := range cases {
		var err error
		c.Meta, err = inference.ReadHeader(c.Data)
		require.NoError(t, err)
	}
	require.NoError(t, rg.env.Order(ctx, cases))
	var ids []string
	for _, c := range cases {
		ids = append(ids, c.OrderID)
	}
	b.waitListed(ids, string(radgate.StateWaiting), 30*time.Second) // the last reload
	b.eval(`window.__sameDocument = "yes"`)

	// The images come; the page sees each order delivered by itself.
	require.NoError(t, rg.env.LoadImages(ctx, cases))
	deadline := time.Now().Add(90 * time.Second)
	for {
		states := b.listedStates()
		n := 0
		for _, id := range ids {
			if states[id] == string(radgate.StateDelivered) {
				n++
			}
		}
		if n == len(ids) {
			break
		}
		require.True(t, time.Now().Before(deadline), "not every order turned delivered live: %v", states)
		time.Sleep(300 * time.Millisecond)
	}
	require.Equal(t, "yes", run(b, chromedp.Evaluate[string](`window.__sameDocument || ""`)), "the list was not reloaded")
	require.Equal(t, len(ids), b.count("table.orders tbody tr.changed"), "each changed row is marked")
	b.shot("orders-live")

	// A new order: the page says so and offers a reload.
	more := newCases(t)[:1]
	require.NoError(t, rg.env.LoadImages(ctx, more))
	require.NoError(t, rg.env.Order(ctx, more))
	b.waitText("p.live", "New orders have arrived")
	b.noPatient(ordersOf(cases), "operator without phi")
}
