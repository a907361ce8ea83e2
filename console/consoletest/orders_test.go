package consoletest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
)

// TestConsoleInTheBrowser is issue 15's browser proof for the pages the
// console has: signed out → sign-in page; sign in by typing a token; orders
// filed at the intake reach delivered on the list; an order's page shows
// its engine and tier; a viewer (and an operator without phi) sees no
// patient name or MRN, a phi user does; a POST without the CSRF token is
// refused with 403; sign-out ends the session. No patient name or MRN in
// serve's log nor in any URL the browser asked for.
func TestConsoleInTheBrowser(t *testing.T) {
	chrome := testenv.Chromium(t)
	rg := startServe(t, nil)
	b := newBrowser(t, chrome, rg.url)

	// Signed out: every console page is the sign-in page, never data.
	b.visit("/console/orders")
	require.Equal(t, rg.url+"/console/signin", b.location())
	b.waitText("h1", "Sign in")
	assert.NotContains(t, b.text(), "Orders, newest first")
	b.shot("signin")

	// An operator (no phi) signs in and files the orders.
	b.signIn(rg.tokens[operator])
	b.waitText("h1", "Orders")
	require.Contains(t, b.text(), operator+" (viewer, operator)")
	cases := rg.fileOrders(t)

	// The list shows each order reach delivered (reload polling).
	var ids []string
	for _, c := range cases {
		ids = append(ids, c.OrderID)
	}
	b.waitListed(ids, string(radgate.StateDelivered), 90*time.Second)
	b.shot("orders")

	// An order's page: the engine with its tier, as the API says.
	c := cases[0]
	st, err := rg.env.OrderStatus(t.Context(), c.OrderID)
	require.NoError(t, err)
	ep, ok := st.Engines[config.DefaultEngine]
	require.True(t, ok, "engine %s on order %s", config.DefaultEngine, c.OrderID)
	require.NotEmpty(t, ep.Tier)
	b.click(fmt.Sprintf(`a[href="/console/orders/%s"]`, c.OrderID))
	b.waitText("h1", c.OrderID)
	require.Equal(t, rg.url+"/console/orders/"+c.OrderID, b.location())
	row := b.textOf(`section.engine`)
	assert.Contains(t, row, config.DefaultEngine)
	assert.Contains(t, row, ep.Tier)
	// Its heatmap thumbnail is an image the browser decoded.
	w := run(b, chromedp.Evaluate[int](`(() => { const i = document.querySelector('section.engine figure.heatmap img');
		if (!i) return -1; return i.decode().then(() => i.naturalWidth, () => 0); })()`, chromedp.EvalAwaitPromise))
	assert.Greater(t, w, 0, "the heatmap thumbnail of %s shows", c.OrderID)
	assert.Contains(t, b.text(), "delivered")
	b.noPatient(cases, "operator without phi")
	b.shot("order")

	// POSTs without the CSRF token: a script's fetch and the sign-out form
	// with its token field removed. Both 403; the session lives on.
	require.Equal(t, http.StatusForbidden, b.post("/console/signout", nil, false))
	b.eval(`document.querySelector('form[action="/console/signout"] input[name=csrf]').remove()`)
	b.click(`form[action="/console/signout"] button`)
	b.waitText("h1", "Forbidden")
	assert.Contains(t, b.text(), "CSRF token is missing or wrong")
	assert.Contains(t, b.textOf("header .who"), operator, "refused in the signed-in layout")
	assert.Zero(t, b.count(`main a[href="/console/signin"]`), "no Sign in link: the session lives")
	b.shot("csrf-refused")
	b.visit("/console/orders/" + c.OrderID)
	b.waitText("h1", c.OrderID) // still signed in

	// Sign-out ends the session: back to sign-in, and the pages with it.
	b.signOut()
	b.visit("/console/orders/" + c.OrderID)
	require.Equal(t, rg.url+"/console/signin", b.location(), "signed out: no order page")

	// A viewer: the list and the order page, no patient anywhere.
	b.signIn(rg.tokens[viewer])
	b.waitText("h1", "Orders")
	b.noPatient(cases, viewer)
	b.visit("/console/orders/" + c.OrderID)
	b.waitText("h1", c.OrderID)
	b.noPatient(cases, viewer)
	b.shot("order-viewer")
	// The same POST as the refused one above, with the page's token: it
	// signs out (a redirect, opaque to fetch).
	require.Equal(t, 0, b.post("/console/signout", nil, true))
	b.visit("/console/orders")
	require.Equal(t, rg.url+"/console/signin", b.location(), "signed out by the POST with its token")

	// phi: the patient is shown (so the checks above can fail).
	b.signIn(rg.tokens[phi])
	b.waitText("h1", "Orders")
	b.visit("/console/orders/" + c.OrderID)
	b.waitText("h1", c.OrderID)
	assert.Contains(t, b.textOf(".phi"), c.mrn, "the phi role sees the patient's MRN")
	b.shot("order-phi")
	b.signOut()

	// With JavaScript off the pages work as well: sign in, list, order.
	b.scripts(false)
	b.signIn(rg.tokens[viewer])
	b.waitText("h1", "Orders")
	b.click(fmt.Sprintf(`a[href="/console/orders/%s"]`, c.OrderID))
	b.waitText("h1", c.OrderID)
	b.shot("order-no-js")
	b.signOut()
	b.scripts(true)

	// Never a patient name or MRN in a URL the browser asked for, nor in
	// serve's log; nor a token in the log.
	urls := b.urls()
	require.Contains(t, urls, rg.url+"/console/orders/"+c.OrderID, "navigations recorded")
	logs := rg.logs.String()
	for _, c := range cases {
		for _, u := range urls {
			assert.NotContains(t, u, c.Patient, "URL %s", u)
			assert.NotContains(t, u, c.mrn, "URL %s", u)
			assert.NotContains(t, u, strings.ReplaceAll(c.Patient, " ", "+"), "URL %s", u)
			assert.NotContains(t, u, strings.ReplaceAll(c.Patient, " ", "%20"), "URL %s", u)
		}
		assert.NotContains(t, logs, c.Patient, "patient name in serve's log")
		assert.NotContains(t, logs, c.mrn, "MRN in serve's log")
	}
	for name, tok := range rg.tokens {
		assert.NotContains(t, logs, tok, "token of %s in serve's log", name)
	}
	assert.Contains(t, logs, "console sign-in", "the log was captured")
	assert.Contains(t, logs, "console PHI view", "the phi view was logged (by order id)")
	t.Logf("screenshots in %s", b.dir)
}
