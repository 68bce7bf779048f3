package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
)

const readmePath = "../../README.md"

// docPages are the pages whose ```sh snippets TestReadmeSnippets runs: the README, then every
// docs/*.md in name order.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pages)
	return append([]string{readmePath}, pages...)
}

// pageName is how messages name a page: its path in the repository, e.g. docs/cli.md.
func pageName(path string) string { return strings.TrimPrefix(filepath.ToSlash(path), "../../") }

// snippet is one ```sh block of a page and the readme-test marker on the line before it:
//
//	<!-- readme-test: skip (why) -->      not run; the reason is required
//	<!-- readme-test: serves HOST:PORT --> runs until Ctrl-C, like a server in its own terminal
type snippet struct {
	line   int // of the opening fence
	code   string
	skip   string // why it is not run
	serves string // the address it listens on
}

var readmeMarker = regexp.MustCompile(`^<!-- readme-test: (skip \((.+)\)|serves (\S+)) -->$`)

func readmeSnippets(t *testing.T, path string) []snippet {
	t.Helper()
	name := pageName(path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		snippets []snippet
		cur      *snippet
		prev     string
		fence    string
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			snippets = append(snippets, *cur)
			cur = nil
		case cur != nil:
			cur.code += line + "\n"
		case fence != "" && line == "```":
			fence = ""
		case fence == "" && line == "```sh":
			cur = &snippet{line: n}
			if m := readmeMarker.FindStringSubmatch(prev); m != nil {
				cur.skip, cur.serves = m[2], m[3]
			} else if strings.Contains(prev, "readme-test") {
				t.Fatalf("%s:%d: malformed marker %q", name, n-1, prev)
			}
		case fence == "" && strings.HasPrefix(line, "```"):
			fence = line
		}
		prev = line
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil || fence != "" {
		t.Fatalf("%s: a code block is not closed", name)
	}
	return snippets
}

// TestReadmeSnippets runs every ```sh block of the README and of each docs/*.md page as written,
// page by page and in order within a page, each block in a fresh shell as if in a new terminal,
// against a cfturn built from this tree, with no CLOUDFLARE_ or CFTURN_ variables inherited. Each
// page starts in a fresh directory, with the servers of the page before stopped, so a page works
// when read on its own. The only change is that the addresses of serving blocks become free
// loopback ports, so the test can run beside anything else.
func TestReadmeSnippets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cfturn and runs the README's and docs/'s shell snippets")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("the README's snippets use %s, which is not installed: make deps installs it", tool)
			}
			t.Skipf("the README's snippets use %s, which is not installed (make deps)", tool)
		}
	}
	pages := docPages(t)
	snippets := map[string][]snippet{}
	for _, page := range pages {
		snippets[page] = readmeSnippets(t, page)
	}
	bin := filepath.Join(t.TempDir(), "bin")
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	t.Cleanup(cancel)
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, "cfturn"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ran := 0
	for _, page := range pages {
		t.Run(pageName(page), func(t *testing.T) {
			ran += runSnippets(ctx, t, pageName(page), bin, snippets[page])
		})
	}
	if ran == 0 {
		t.Fatal("no README or docs/ snippet ran")
	}
}

// runSnippets runs one page's snippets in a fresh directory and returns how many it ran. The
// servers it starts are stopped when t ends.
func runSnippets(ctx context.Context, t *testing.T, page, bin string, snippets []snippet) int {
	work := t.TempDir()
	ports := map[string]string{}
	for _, s := range snippets {
		if s.serves != "" {
			ports[s.serves] = freeAddr(t)
		}
	}
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + work}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != "PATH" && name != "HOME" && !strings.HasPrefix(name, "CLOUDFLARE_") && !strings.HasPrefix(name, "CFTURN_") {
			env = append(env, kv)
		}
	}

	ran := 0
	for _, s := range snippets {
		if s.skip != "" {
			t.Logf("%s:%d: not run: %s", page, s.line, s.skip)
			continue
		}
		code := s.code
		for from, to := range ports {
			code = strings.ReplaceAll(code, from, to)
		}
		cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n"+code)
		cmd.Dir, cmd.Env = work, env
		out := &syncbuf.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		ran++
		if s.serves == "" {
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s:%d: the snippet failed: %v\n%s%s", page, s.line, err, s.code, out)
			}
			continue
		}
		// A server: started in a process group of its own, so that Ctrl-C reaches it as in a
		// terminal, and stopped after the page's last snippet (cleanups run last first).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
				t.Errorf("%s:%d: Ctrl-C: %v", page, s.line, err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("%s:%d: after Ctrl-C: %v\n%s", page, s.line, err, out)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s:%d: still running 30s after Ctrl-C\n%s", page, s.line, out)
			}
		})
		if err := waitListening(ports[s.serves], exited); err != nil {
			t.Fatalf("%s:%d: %v\n%s%s", page, s.line, err, s.code, out)
		}
		t.Logf("%s:%d: serving on %s (page: %s)", page, s.line, ports[s.serves], s.serves)
	}
	return ran
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListening polls addr until it accepts a connection, the process exits, or a minute passes.
func waitListening(addr string, exited <-chan error) error {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before listening on %s: %v", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("nothing listens on %s after a minute", addr)
}

// TestReadmeFacts checks the README's statements about the toolchain and the import graph against
// go.mod, go list and go help.
func TestReadmeFacts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(readme)), " ")

	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "Go " + string(m[1]) + " or newer"; !strings.Contains(text, want) {
		t.Errorf("README.md does not say %q, as go.mod does", want)
	}

	// The import graph: what the README names is exactly what go list shows.
	claim := regexp.MustCompile("A program that imports `pkg/turn` links the standard library, cfturn's own\\s+generated models and request builders \\(`gen/calls`, `gen/callsclient`\\), and (no other module|the modules\\s+(.+?))\\s+\\(").FindStringSubmatch(text)
	if claim == nil {
		t.Fatal("README.md no longer has the sentence about pkg/turn's imports that this test checks")
	}
	var named []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(claim[2], -1) {
		named = append(named, m[1])
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}} {{.Module.Path}}{{end}}", "github.com/cfturn/cfturn/pkg/turn").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var modules, own []string
	for line := range strings.Lines(string(out)) {
		pkg, mod, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case mod == "github.com/cfturn/cfturn":
			own = append(own, strings.TrimPrefix(pkg, mod+"/"))
		case !slices.Contains(modules, mod):
			modules = append(modules, mod)
		}
	}
	slices.Sort(named)
	slices.Sort(modules)
	if !slices.Equal(named, modules) {
		t.Errorf("README.md says pkg/turn links the modules %q; go list -deps shows %q", named, modules)
	}
	slices.Sort(own)
	if want := []string{"gen/calls", "gen/callsclient", "pkg/turn"}; !slices.Equal(own, want) {
		t.Errorf("pkg/turn's packages of cfturn itself are %q; the README names %q", own, want)
	}

	// go doc prints no examples; go doc -http serves them.
	help, err := exec.Command("go", "help", "doc").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "`go doc -http`") && !strings.Contains(string(help), "-http") {
		t.Error("README.md points to go doc -http, which this go command does not have")
	}
}

var (
	markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingText  = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	notInSlug    = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// headingAnchors returns the anchors GitHub gives a page's headings: lower case, punctuation
// dropped, spaces as dashes, a repeated one numbered.
func headingAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, m := range headingText.FindAllStringSubmatch(text, -1) {
		slug := strings.ReplaceAll(notInSlug.ReplaceAllString(strings.ToLower(strings.ReplaceAll(m[1], "`", "")), ""), " ", "-")
		if n := seen[slug]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

// TestReadmeLinks checks that every relative link of the README, docs/*.md, ARCHITECTURE.md and
// CONTRIBUTING.md names a file of the repository and, for a Markdown page, a heading it has: the
// README links to deeper pages instead of repeating them, so a moved section must not leave a
// dead link behind.
func TestReadmeLinks(t *testing.T) {
	pages := append(docPages(t), "../../ARCHITECTURE.md", "../../CONTRIBUTING.md")
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		// Links inside code blocks are code, not links.
		var prose strings.Builder
		inCode := false
		for line := range strings.Lines(string(text)) {
			if strings.HasPrefix(line, "```") {
				inCode = !inCode
				continue
			}
			if !inCode {
				prose.WriteString(line)
			}
		}
		for _, m := range markdownLink.FindAllStringSubmatch(prose.String(), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
			}
			linked, err := os.ReadFile(path)
			if err != nil {
				if info, statErr := os.Stat(path); statErr == nil && info.IsDir() && anchor == "" {
					continue
				}
				t.Errorf("%s: link %q: no such file", pageName(page), target)
				continue
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !headingAnchors(string(linked))[anchor] {
				t.Errorf("%s: link %q: %s has no heading #%s", pageName(page), target, pageName(path), anchor)
			}
		}
	}
}
