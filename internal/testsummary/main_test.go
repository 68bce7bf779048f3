package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Real `go test -json` output of a module with a passing, a skipping and a failing test.
func TestSummary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.test/m\n\ngo 1.24\n",
		"m_test.go": `package m

import "testing"

func TestPasses(t *testing.T) { t.Log("quiet when it passes") }
func TestSkips(t *testing.T)  { t.Skip("redis-server not installed: apt-get install redis-server") }
func TestFails(t *testing.T)  { t.Error("this one fails") }
func TestSub(t *testing.T) {
	t.Run("inner", func(t *testing.T) { t.Skipf("no Chromium") })
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	events, _ := cmd.Output() // it fails: TestFails
	var out bytes.Buffer
	s := &summary{out: &out, outputs: map[string][]string{}}
	if err := s.read(bytes.NewReader(append(events, "testsummary: failed: another module\n"...))); err != nil {
		t.Fatal(err)
	}
	s.report()
	text := out.String()
	for _, want := range []string{
		"this one fails",
		"FAIL\texample.test/m",
		"!!! 2 TESTS SKIPPED: this run did not test everything",
		"example.test/m TestSkips: m_test.go:6: redis-server not installed: apt-get install redis-server",
		"example.test/m TestSub/inner: m_test.go:9: no Chromium",
		"make deps does it with apt",
		"testsummary: failed: another module",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "quiet when it passes") || strings.Contains(text, "=== RUN") {
		t.Errorf("summary shows what plain go test hides:\n%s", text)
	}
	if !s.failed {
		t.Error("a failed test did not make the summary fail")
	}
	if !strings.HasSuffix(text, "\ntests: 2 passed, 1 failed, 2 skipped\n") {
		t.Errorf("summary does not end with the counts:\n%s", text)
	}

	// A clean run says nothing was skipped and does not fail.
	s = &summary{out: &out, outputs: map[string][]string{}}
	out.Reset()
	s.read(strings.NewReader(`{"Action":"pass","Package":"p","Test":"TestA"}` + "\n"))
	s.report()
	if s.failed || !strings.Contains(out.String(), "no test skipped") || !strings.HasSuffix(out.String(), "tests: 1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("clean run: failed=%v %q", s.failed, out.String())
	}
}

// A package without test files is not a skipped test.
func TestPackageWithoutTests(t *testing.T) {
	var out bytes.Buffer
	s := &summary{out: &out, outputs: map[string][]string{}}
	s.read(strings.NewReader(`{"Action":"output","Package":"p","Output":"?   \tp\t[no test files]\n"}` + "\n" + `{"Action":"skip","Package":"p"}` + "\n"))
	s.report()
	if len(s.skips) != 0 || !strings.Contains(out.String(), "[no test files]") {
		t.Errorf("skips %v, output %q", s.skips, out.String())
	}
}
