package cfturn

import (
	"bufio"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/cfturn/cfturn"

// TestArchitectureMatchesGoList checks ARCHITECTURE.md's import picture against the packages as
// they are: every package of the module is listed there with exactly the module's packages it
// imports, so the picture cannot drift from the code.
func TestArchitectureMatchesGoList(t *testing.T) {
	want := architectureImports(t)
	got := map[string][]string{}
	out := goList(t, "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fields := strings.Fields(line)
		pkg := short(fields[0])
		var deps []string
		for _, imp := range fields[1:] {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				deps = append(deps, short(imp))
			}
		}
		slices.Sort(deps)
		got[pkg] = deps
	}
	for pkg, deps := range got {
		w, ok := want[pkg]
		switch {
		case !ok:
			t.Errorf("ARCHITECTURE.md does not list package %s (it imports %v): add a line for it", pkg, deps)
		case !slices.Equal(w, deps):
			t.Errorf("package %s imports %v; ARCHITECTURE.md says %v", pkg, deps, w)
		}
	}
	for pkg := range want {
		if _, ok := got[pkg]; !ok {
			t.Errorf("ARCHITECTURE.md lists %s, which is not a package of the module", pkg)
		}
	}
}

// TestPackagesLinkLittle checks what the server and the fake link: never Redis, pion or
// Prometheus (and the server no kin-openapi), so a user who embeds the handler or tests against
// the fake does not pull them in. What pkg/turn links is checked exactly by
// pkg/turn's TestClientDependenciesStaySmall.
func TestPackagesLinkLittle(t *testing.T) {
	forbidden := map[string][]string{
		"./pkg/turn/iceserve":  {"github.com/pion/", "github.com/redis/", "github.com/prometheus/", "github.com/getkin/"},
		"./pkg/turn/turntest":  {"github.com/pion/", "github.com/redis/", "github.com/prometheus/"},
		"./pkg/turn/turnusage": {"github.com/pion/", "github.com/redis/", "github.com/prometheus/", "github.com/getkin/", "github.com/vektah/gqlparser/v2/validator"},
	}
	for pkg, bad := range forbidden {
		for _, d := range strings.Fields(goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)) {
			for _, b := range bad {
				if strings.HasPrefix(d, b) {
					t.Errorf("%s links %s, which it must not (see ARCHITECTURE.md)", pkg, d)
				}
			}
		}
	}
}

// architectureImports reads the ```imports block of ARCHITECTURE.md: one package a line, then the
// module's packages it imports.
func architectureImports(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "```imports":
			in = true
		case in && line == "```":
			in = false
		case in:
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			deps := slices.DeleteFunc(fields[1:], func(s string) bool { return s == "→" || s == "-" })
			slices.Sort(deps)
			want[fields[0]] = deps
		}
	}
	if len(want) == 0 {
		t.Fatal("ARCHITECTURE.md has no ```imports block")
	}
	return want
}

func short(pkg string) string {
	if pkg == module {
		return "."
	}
	return strings.TrimPrefix(pkg, module+"/")
}

func goList(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return string(out)
}
