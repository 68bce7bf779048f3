package turn_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/openapi"
	"github.com/cfturn/cfturn/pkg/turn"
)

// facadeMethods maps each operation of the spec to the one Client method that performs it.
var facadeMethods = map[string]string{
	"createTurnKey":       "CreateKey",
	"listTurnKeys":        "ListKeys",
	"getTurnKey":          "GetKey",
	"updateTurnKey":       "UpdateKey",
	"deleteTurnKey":       "DeleteKey",
	"generateIceServers":  "GenerateICEServers",
	"revokeIceCredential": "RevokeICECredential",
}

// Every operation in openapi/calls.yaml has one facade method, whose doc comment states the
// operation's method and path and links the Cloudflare docs.
func TestEverySpecOperationHasAMethod(t *testing.T) {
	doc, err := openapi.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	docs := methodDocs(t)
	client := reflect.TypeOf(&turn.Client{})
	seen := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name, ok := facadeMethods[op.OperationID]
			if !ok {
				t.Errorf("operation %s (%s %s) has no facade method", op.OperationID, method, path)
				continue
			}
			seen[op.OperationID] = true
			if _, ok := client.MethodByName(name); !ok {
				t.Errorf("Client has no method %s for %s", name, op.OperationID)
			}
			comment := docs[name]
			if !strings.Contains(comment, method+" ") || !strings.Contains(comment, path) {
				t.Errorf("%s's doc comment does not state %s %s:\n%s", name, method, path, comment)
			}
			if !strings.Contains(comment, "https://developers.cloudflare.com/") {
				t.Errorf("%s's doc comment does not link the Cloudflare docs", name)
			}
		}
	}
	for id := range facadeMethods {
		if !seen[id] {
			t.Errorf("facade maps %s, which the spec does not have", id)
		}
	}
}

func methodDocs(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil && fn.Doc != nil {
				out[fn.Name.Name] = fn.Doc.Text()
			}
		}
	}
	return out
}

// A program importing only pkg/turn links its generated models and request builders (gen/calls,
// gen/callsclient), the oapi-codegen runtime those builders encode parameters with, the runtime's
// own two modules, and the standard library: not the generated server interface, kin-openapi or a
// YAML parser, pion, Redis or Prometheus.
func TestClientDependenciesStaySmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}} {{.Module.Path}}{{end}}", "github.com/cfturn/cfturn/pkg/turn").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var own, modules []string
	for line := range strings.Lines(string(out)) {
		pkg, mod, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case mod == "github.com/cfturn/cfturn":
			own = append(own, pkg)
		case !slices.Contains(modules, mod):
			modules = append(modules, mod)
		}
	}
	slices.Sort(own)
	slices.Sort(modules)
	wantOwn := []string{"github.com/cfturn/cfturn/gen/calls", "github.com/cfturn/cfturn/gen/callsclient", "github.com/cfturn/cfturn/pkg/turn"}
	wantModules := []string{"github.com/apapsch/go-jsonmerge/v2", "github.com/google/uuid", "github.com/oapi-codegen/runtime"}
	if !slices.Equal(own, wantOwn) {
		t.Errorf("pkg/turn links cfturn's packages %q, want %q", own, wantOwn)
	}
	if !slices.Equal(modules, wantModules) {
		t.Errorf("pkg/turn links the modules %q, want %q", modules, wantModules)
	}
}
