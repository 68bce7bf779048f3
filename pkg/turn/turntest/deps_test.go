package turntest_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTurnLinksNoPion keeps the relay's dependencies out of programs that import only pkg/turn:
// pion belongs to turntest and turncheck.
func TestTurnLinksNoPion(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/cfturn/cfturn/pkg/turn").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "github.com/cfturn/cfturn/gen/calls") {
		t.Fatalf("go list -deps printed no package of ours:\n%s", out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "pion") {
			t.Errorf("pkg/turn links %s", p)
		}
	}
}
