// Command testsummary reads `go test -json` on stdin, prints what plain `go test` would (each
// package's result line, and the output of failed tests), and ends with a loud summary of every
// test that skipped, with its reason, so that a run that passed while skipping says so. `make test`
// pipes all three modules through it. Lines that are not test events (from a go command that
// failed before testing) pass through unchanged; a line starting with "testsummary: failed:" marks
// a failed go command. Its last line counts the tests: "tests: N passed, N failed, N skipped". It
// exits 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is the part of a test2json event used here.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// skip is one skipped test and why.
type skip struct {
	pkg, test, reason string
}

// summary is the state built from the event stream.
type summary struct {
	out     io.Writer
	outputs map[string][]string // a running test's output lines, by package and test
	skips   []skip
	failed  bool
	// passed and failedTests count tests (subtests included), for the closing line.
	passed, failedTests int
}

func main() {
	s := &summary{out: os.Stdout, outputs: map[string][]string{}}
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	s.report()
	if s.failed {
		os.Exit(1)
	}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var e event
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil || e.Action == "" {
			if strings.HasPrefix(line, "testsummary: failed:") {
				s.failed = true
			}
			fmt.Fprintln(s.out, line)
			continue
		}
		s.event(e)
	}
	return sc.Err()
}

func (s *summary) event(e event) {
	id := e.Package + " " + e.Test
	switch {
	case e.Action == "build-output":
		fmt.Fprint(s.out, e.Output)
	case e.Action == "build-fail":
		s.failed = true
	case e.Test == "" && e.Action == "output":
		if e.Output != "PASS\n" { // plain go test shows only the "ok" line of a passing package
			fmt.Fprint(s.out, e.Output) // ok and FAIL lines, "no test files", a package's own output
		}
	case e.Test == "" && e.Action == "fail":
		s.failed = true
	case e.Action == "output":
		if !strings.HasPrefix(e.Output, "=== ") { // the framing -v adds, which plain go test omits
			s.outputs[id] = append(s.outputs[id], e.Output)
		}
	case e.Action == "fail":
		s.failed = true
		s.failedTests++
		for _, l := range s.outputs[id] {
			fmt.Fprint(s.out, l)
		}
		delete(s.outputs, id)
	case e.Action == "skip" && e.Test != "": // a package without tests "skips" too
		s.skips = append(s.skips, skip{e.Package, e.Test, skipReason(s.outputs[id])})
		delete(s.outputs, id)
	case e.Action == "pass":
		if e.Test != "" {
			s.passed++
		}
		delete(s.outputs, id)
	}
}

// skipReason is what a skipped test logged, without the framing lines test2json reports.
func skipReason(lines []string) string {
	var reason []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		reason = append(reason, t)
	}
	if len(reason) == 0 {
		return "(no reason given)"
	}
	return strings.Join(reason, "; ")
}

// report prints the skipped tests, loudly, with how to run them, and then the counts on a line
// of their own: "tests: N passed, N failed, N skipped".
func (s *summary) report() {
	defer func() {
		fmt.Fprintf(s.out, "tests: %d passed, %d failed, %d skipped\n", s.passed, s.failedTests, len(s.skips))
	}()
	if len(s.skips) == 0 {
		fmt.Fprintln(s.out, "testsummary: no test skipped")
		return
	}
	bar := strings.Repeat("!", 78)
	fmt.Fprintf(s.out, "\n%s\n!!! %d %s SKIPPED: this run did not test everything\n", bar, len(s.skips), plural(len(s.skips), "TEST", "TESTS"))
	for _, k := range s.skips {
		fmt.Fprintf(s.out, "!!!   %s %s: %s\n", strings.TrimPrefix(k.pkg, "github.com/cfturn/cfturn/"), k.test, k.reason)
	}
	fmt.Fprintf(s.out, "!!! To run them: install what they name (make deps does it with apt, as root or with\n"+
		"!!! sudo: redis-server, chromium-headless-shell, curl, jq, gcc), then run make test again.\n"+
		"!!! Under CI (CI set) they fail instead of skipping.\n%s\n", bar)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
