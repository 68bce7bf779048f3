// Package janusserver starts a real Janus WebRTC server for tests: its plain-HTTP API on a free
// loopback port, the echotest plugin only, TURN credentials fetched from a TURN REST API
// (turn_rest_api), its configuration and log in a temporary directory, stopped when the test ends.
package janusserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/testproc"
)

// Options configures Start.
type Options struct {
	// TURNRESTAPI is the URL Janus asks for TURN credentials (turn_rest_api, required).
	TURNRESTAPI string
	// TURNRESTKey is sent as key= and api= (turn_rest_api_key); empty sends none.
	TURNRESTKey string
	// Method is turn_rest_api_method: "GET" or "POST" (Janus's default).
	Method string
}

// Server is a running janus.
type Server struct {
	URL  string // the Janus API over HTTP, e.g. http://127.0.0.1:40001/janus
	dir  string
	proc *testproc.Process
}

// libDir finds the folder of Janus's plugins and transports (Debian puts it under the
// architecture's lib folder).
func libDir() (string, error) {
	for _, pattern := range []string{"/usr/lib/*/janus", "/usr/lib/janus", "/usr/local/lib/janus", "/opt/janus/lib/janus"} {
		matches, _ := filepath.Glob(filepath.Join(pattern, "plugins", "libjanus_echotest.so"))
		if len(matches) > 0 {
			return filepath.Dir(filepath.Dir(matches[0])), nil
		}
	}
	return "", errors.New("janusserver: libjanus_echotest.so not found under /usr/lib/*/janus/plugins")
}

// Start starts janus for tb and stops it in tb.Cleanup. Without a janus binary the test is
// skipped, except under CI (CI set), where it fails: `make deps` installs janus.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if _, err := exec.LookPath("janus"); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("janus not installed (apt-get install janus); make deps installs it")
		}
		tb.Skip("janus not installed: apt-get install janus")
	}
	if opts.TURNRESTAPI == "" {
		tb.Fatal("janusserver: Options.TURNRESTAPI is empty")
	}
	lib, err := libDir()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{dir: tb.TempDir()}
	for try := 0; try < 5; try++ {
		if err = s.launch(lib, opts); err == nil {
			break
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// quote renders s as a libconfig string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// linkOnly makes a folder holding only the named libraries of from, so Janus loads those alone.
func linkOnly(dir, from string, names ...string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for _, n := range names {
		if err := os.Symlink(filepath.Join(from, n), filepath.Join(dir, n)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func (s *Server) launch(lib string, opts Options) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	run := filepath.Join(s.dir, "run"+strconv.Itoa(port))
	conf := filepath.Join(run, "conf")
	plugins, err := linkOnly(filepath.Join(run, "plugins"), filepath.Join(lib, "plugins"), "libjanus_echotest.so")
	if err != nil {
		return err
	}
	transports, err := linkOnly(filepath.Join(run, "transports"), filepath.Join(lib, "transports"), "libjanus_http.so")
	if err != nil {
		return err
	}
	empty, err := linkOnly(filepath.Join(run, "none"), "")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(conf, 0o700); err != nil {
		return err
	}
	method := opts.Method
	if method == "" {
		method = "POST"
	}
	nat := []string{"\tturn_rest_api = " + quote(opts.TURNRESTAPI), "\tturn_rest_api_method = " + quote(method), "\tturn_rest_api_timeout = 5"}
	if opts.TURNRESTKey != "" {
		nat = append(nat, "\tturn_rest_api_key = "+quote(opts.TURNRESTKey))
	}
	files := map[string]string{
		"janus.jcfg": strings.Join([]string{
			"general: {",
			"\tconfigs_folder = " + quote(conf),
			"\tplugins_folder = " + quote(plugins),
			"\ttransports_folder = " + quote(transports),
			"\tevents_folder = " + quote(empty),
			"\tloggers_folder = " + quote(empty),
			"\tdebug_level = 5",
			"\tdebug_colors = false",
			"\tsession_timeout = 60",
			"}",
			"media: {",
			"\trtp_port_range = \"20000-40000\"",
			"}",
			"nat: {",
			strings.Join(nat, "\n"),
			"\tice_ignore_list = \"vmnet\"",
			"}",
			"events: {",
			"\tbroadcast = false",
			"}",
			"",
		}, "\n"),
		"janus.transport.http.jcfg": strings.Join([]string{
			"general: {",
			"\tjson = \"compact\"",
			"\tbase_path = \"/janus\"",
			"\thttp = true",
			"\tport = " + strconv.Itoa(port),
			"\tip = \"127.0.0.1\"",
			"\thttps = false",
			"}",
			"admin: {",
			"\tadmin_http = false",
			"\tadmin_https = false",
			"}",
			"",
		}, "\n"),
		"janus.plugin.echotest.jcfg": "general: {\n}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	s.URL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/janus"
	logFile := filepath.Join(s.dir, "janus.log")
	cmd := exec.Command("janus", "-F", conf, "-C", filepath.Join(conf, "janus.jcfg"), "-L", logFile, "-N", "-o")
	cmd.Dir = run
	proc, err := testproc.Start(cmd, fmt.Sprintf("janus on port %d", port), 30*time.Second, 50*time.Millisecond, s.answers, func() string { return s.LogTail(15) })
	if err != nil {
		return err
	}
	s.proc = proc
	return nil
}

func (s *Server) answers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/info", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Log returns Janus's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "janus.log"))
	return string(b)
}

// LogTail returns the last n lines of Janus's log.
func (s *Server) LogTail(n int) string {
	lines := strings.Split(strings.TrimSpace(s.Log()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Stop kills janus and waits for it to exit. It is safe to call twice.
func (s *Server) Stop() {
	s.proc.Stop()
}

// Call sends one Janus API request (a JSON object; "transaction" is added) to path under the API
// URL, e.g. "" to create a session or "/<session>/<handle>" for a handle, and decodes the answer.
func (s *Server) Call(ctx context.Context, path string, req map[string]any) (map[string]any, error) {
	req["transaction"] = strconv.FormatInt(time.Now().UnixNano(), 36)
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	return do(r)
}

// Event long-polls the session for its next event.
func (s *Server) Event(ctx context.Context, session string) (map[string]any, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/"+session+"?maxev=1", nil)
	if err != nil {
		return nil, err
	}
	return do(r)
}

func do(r *http.Request) (map[string]any, error) {
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("janus answered %s: %v: %.200s", resp.Status, err, data)
	}
	if out["janus"] == "error" {
		return out, fmt.Errorf("janus error: %v", out["error"])
	}
	return out, nil
}
