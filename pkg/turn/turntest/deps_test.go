package turntest_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoPion keeps pion out of the programs that test the client: pkg/turn, the fake, and
// pkg/turn's own test binary link no TURN code. pion belongs to turnrelay and turncheck.
func TestLinksNoPion(t *testing.T) {
	for _, args := range [][]string{
		{"-deps", "github.com/cfturn/cfturn/pkg/turn"},
		{"-deps", "github.com/cfturn/cfturn/pkg/turn/turntest"},
		{"-test", "-deps", "github.com/cfturn/cfturn/pkg/turn"},
	} {
		out, err := exec.Command("go", append([]string{"list"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "github.com/cfturn/cfturn/gen/calls") {
			t.Fatalf("go list %v printed no package of ours:\n%s", args, out)
		}
		for _, p := range strings.Fields(string(out)) {
			if strings.Contains(p, "pion") {
				t.Errorf("go list %v: links %s", args, p)
			}
		}
	}
}
