// Package consoletest holds the operator console's browser tests: headless
// Chromium, driven by chromedp, against `radgate serve` (service.Run, in
// the test process) on the real peers. They sign in by typing a token into
// the form, watch orders filed at the intake reach delivered on the orders
// list, open one, check what each role sees (never a patient name or MRN
// without the phi role), that a POST without the CSRF token is refused and
// that sign-out ends the session; follow a refused result from the
// failures page through replay to delivered; read the routes, engines
// and usage pages; and sign in through an OpenID Provider (OIDC). Each page visited is saved as a 1366×768 PNG
// (RADGATE_SCREENSHOTS/<Test>/, or a folder under the test's temporary
// directory). They are in their own package so that the test command runs
// them with their own timeout (scripts/test.sh); see testenv/README.md.
//
// The package has no code besides its tests.
package consoletest
