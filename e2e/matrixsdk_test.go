package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// matrixSDKResult is what matrixsdk/turnserver.mjs prints after RESULT.
type matrixSDKResult struct {
	OK     bool `json:"ok"`
	Answer struct {
		Username string   `json:"username"`
		Password string   `json:"password"`
		URIs     []string `json:"uris"`
		TTL      int      `json:"ttl"`
	} `json:"answer"`
	HTTPStatus int    `json:"httpStatus"`
	Errcode    string `json:"errcode"`
	Error      string `json:"error"`
}

// needMatrixSDK returns the probe script's path, skipping the test without node or without the
// SDK installed (make deps runs npm ci) unless CI is set, where it fails.
func needMatrixSDK(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("matrixsdk")
	if err != nil {
		t.Fatal(err)
	}
	_, nodeErr := exec.LookPath("node")
	_, sdkErr := os.Stat(filepath.Join(dir, "node_modules", "matrix-js-sdk", "package.json"))
	if nodeErr != nil || sdkErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and matrix-js-sdk cannot run (node: %v, SDK: %v): make deps installs it", nodeErr, sdkErr)
		}
		t.Skip("matrix-js-sdk not installed (make deps: npm ci in e2e/matrixsdk); skipped outside CI")
	}
	return filepath.Join(dir, "turnserver.mjs")
}

// matrixTurnServer runs matrix-js-sdk's turnServer() against homeserver with token, as a
// Matrix client does before a call, and returns what the SDK made of the answer.
func matrixTurnServer(t *testing.T, script, homeserver, token string) matrixSDKResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, homeserver)
	cmd.Env = append(os.Environ(), "MATRIX_ACCESS_TOKEN="+token)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node turnserver.mjs: %v\nstderr: %s", err, stderr.String())
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			var res matrixSDKResult
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatalf("the probe's RESULT line: %v: %s", err, line)
			}
			return res
		}
	}
	t.Fatalf("the probe printed no RESULT line: %s\nstderr: %s", out, stderr.String())
	return matrixSDKResult{}
}

// The harness itself: the SDK asks the path Matrix specifies with the bearer token, reads a
// turnServer answer and reports an M_UNKNOWN_TOKEN error with its status and code.
func TestMatrixSDKHarness(t *testing.T) {
	script := needMatrixSDK(t)
	var mu sync.Mutex
	var paths, auths []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths, auths = append(paths, r.URL.Path), append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer good" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errcode":"M_UNKNOWN_TOKEN","error":"Unknown access token"}`))
			return
		}
		w.Write([]byte(`{"username":"1:u","password":"p","uris":["turn:127.0.0.1:3478?transport=udp"],"ttl":86400}`))
	}))
	defer hs.Close()

	res := matrixTurnServer(t, script, hs.URL, "good")
	if !res.OK || res.Answer.Username != "1:u" || res.Answer.TTL != 86400 || len(res.Answer.URIs) != 1 {
		t.Errorf("good token: %+v", res)
	}
	res = matrixTurnServer(t, script, hs.URL, "bad")
	if res.OK || res.HTTPStatus != 401 || res.Errcode != "M_UNKNOWN_TOKEN" {
		t.Errorf("bad token: %+v, want 401 M_UNKNOWN_TOKEN", res)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, p := range paths {
		if p != "/_matrix/client/v3/voip/turnServer" {
			t.Errorf("request %d to %s", i, p)
		}
	}
	if len(auths) < 2 || auths[0] != "Bearer good" {
		t.Errorf("Authorization headers %q", auths)
	}
}
