package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cfturn/cfturn/pkg/turn"
)

// chromiumPath finds the browser: $CFTURN_CHROMIUM, else Debian's chromium-headless-shell or chromium.
func chromiumPath() string {
	if p := os.Getenv("CFTURN_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium-headless-shell", "chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// needChromium returns the browser's path, skipping the test without one unless CI is set: in CI
// the browser test must run.
func needChromium(t *testing.T) string {
	t.Helper()
	p := chromiumPath()
	if p == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and no Chromium was found: install chromium-headless-shell (make deps) or set CFTURN_CHROMIUM")
		}
		t.Skip("no Chromium (install chromium-headless-shell or set CFTURN_CHROMIUM); skipped outside CI")
	}
	return p
}

// buildCfturn builds the cfturn binary from the main module into a temporary directory.
func buildCfturn(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cfturn")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cfturn")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/cfturn: %v\n%s", err, out)
	}
	return bin
}

// startCfturn runs a cfturn server command with --json and decodes the first JSON object it prints.
// The process gets Ctrl-C when the test ends and is killed if it does not stop.
func startCfturn(t *testing.T, bin string, env []string, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	decoded := make(chan error, 1)
	go func() {
		decoded <- json.NewDecoder(bufio.NewReader(stdout)).Decode(out)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-decoded:
		if err != nil {
			t.Fatalf("cfturn %s: reading its --json start line: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("cfturn %s printed nothing in 30s\nstderr: %s", strings.Join(args, " "), stderr.String())
	}
}

// pageResult is window.cfturnResult of examples/browser.
type pageResult struct {
	OK                       bool     `json:"ok"`
	Error                    string   `json:"error"`
	Errors                   []string `json:"errors"`
	TurnUser                 string   `json:"turnUser"`
	LocalCandidateType       string   `json:"localCandidateType"`
	RemoteCandidateType      string   `json:"remoteCandidateType"`
	PeerBLocalCandidateType  string   `json:"peerBLocalCandidateType"`
	PeerBRemoteCandidateType string   `json:"peerBRemoteCandidateType"`
	RelayProtocol            string   `json:"relayProtocol"`
	RTTms                    float64  `json:"rttMs"`
}

// runPage opens url in a new tab and waits for the page's verdict.
func runPage(t *testing.T, browser context.Context, url string) pageResult {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	defer cancel()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
	res, err := chromedp.Run(tab, chromedp.Poll[pageResult]("window.cfturnResult",
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second)))
	if err != nil {
		log, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("log").textContent`))
		t.Fatalf("the page gave no verdict: %v\npage log:\n%s", err, log)
	}
	if !res.OK {
		log, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("log").textContent`))
		t.Logf("page log:\n%s", log)
	}
	return res
}

// startBrowser starts headless Chromium with a throwaway profile; it is stopped when the test ends.
func startBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry a timeout (see chromedp.Run).
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return browser
}

// TestBrowserExamplePage drives headless Chromium through examples/browser, served by
// `cfturn serve-ice --example-page`, minting from `cfturn serve-fake` with its relay: the data
// channel opens over relay candidates on both peers, then fails once the credential is revoked.
func TestBrowserExamplePage(t *testing.T) {
	chromium := needChromium(t)
	bin := buildCfturn(t)

	var fake struct {
		APIBaseURL, ICEBaseURL, Token, AccountID, RelayUDPAddr string
	}
	startCfturn(t, bin, nil, &fake, "serve-fake", "--json", "--addr", "127.0.0.1:0")
	if !strings.HasPrefix(fake.RelayUDPAddr, "127.0.0.1:") {
		t.Fatalf("serve-fake runs no relay: %+v", fake)
	}
	client, err := turn.NewClient(turn.WithBaseURL(fake.APIBaseURL), turn.WithICEBaseURL(fake.ICEBaseURL), turn.WithAPIToken(fake.Token), turn.WithAccountID(fake.AccountID), turn.WithGetenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key, err := client.CreateKey(ctx, turn.CreateKeyParams{Name: "browser"})
	if err != nil {
		t.Fatal(err)
	}
	var ice struct{ URL string }
	startCfturn(t, bin, []string{"CFTURN_KEY_SECRET=" + key.Secret.Reveal(), "CLOUDFLARE_ACCOUNT_ID=" + fake.AccountID},
		&ice, "--base-url", fake.APIBaseURL, "serve-ice", "--json", "--addr", "127.0.0.1:0", "--key-id", key.ID, "--example-page")
	page := strings.TrimSuffix(ice.URL, "/") + "/example/"

	browser := startBrowser(t, chromium)
	res := runPage(t, browser, page)
	if !res.OK {
		t.Fatalf("the page failed: %s %v", res.Error, res.Errors)
	}
	for name, typ := range map[string]string{
		"A local": res.LocalCandidateType, "A remote": res.RemoteCandidateType,
		"B local": res.PeerBLocalCandidateType, "B remote": res.PeerBRemoteCandidateType,
	} {
		if typ != "relay" {
			t.Errorf("peer %s candidate is %q, want relay: %+v", name, typ, res)
		}
	}
	if res.RTTms <= 0 || res.TurnUser == "" {
		t.Errorf("no round trip or no TURN username: %+v", res)
	}
	t.Logf("Chromium connected through the relay on %s (a high loopback port): %s, round trip %.2f ms", fake.RelayUDPAddr, res.RelayProtocol, res.RTTms)

	// serve-ice caches the credential per caller; revoked, the same credential must now fail.
	err = client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: key.Secret, Username: res.TurnUser})
	if err != nil {
		t.Fatal(err)
	}
	res2 := runPage(t, browser, page+"?timeout=8000")
	if res2.TurnUser != res.TurnUser {
		t.Fatalf("serve-ice answered a new credential (%q, revoked %q): the revoked case was not tested", res2.TurnUser, res.TurnUser)
	}
	if res2.OK {
		t.Fatalf("the page connected with a revoked credential: %+v", res2)
	}
	t.Logf("revoked credential: %s", res2.Error)
	if !strings.Contains(strings.Join(res2.Errors, " "), "401") {
		t.Errorf("candidate errors %v, want a 401 from the relay", res2.Errors)
	}
}
