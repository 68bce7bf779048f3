// Package e2e holds cfturn's end-to-end tests of the data plane: two pion/webrtc peers that open a
// data channel through the fake's TURN relay with credentials served by iceserve.Handler, and
// headless Chromium driven through examples/browser against cfturn serve-ice and serve-fake.
//
// It is a module of its own so that pion/webrtc and chromedp stay out of the main module's
// graph. Run it with `make test` (or `cd e2e && go test ./...`). The browser tests need
// chromium-headless-shell (Debian: apt-get install --no-install-recommends chromium-headless-shell,
// or CFTURN_CHROMIUM=/path/to/chromium); they skip without it unless CI is set, where they fail.
package e2e
