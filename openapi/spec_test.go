package openapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/cfturn/cfturn/openapi"
)

func TestLoadValidates(t *testing.T) {
	doc, err := openapi.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			ids = append(ids, op.OperationID)
		}
	}
	slices.Sort(ids)
	want := []string{"createTurnKey", "deleteTurnKey", "generateIceServers", "getTurnKey", "listTurnKeys", "revokeIceCredential", "updateTurnKey"}
	if !slices.Equal(ids, want) {
		t.Fatalf("operations = %v, want %v", ids, want)
	}
}

// The facts in DESIGN.md that the spec must carry: create answers 201, ICE operations live on the
// Realtime API with the TURN key as bearer, and the field limits.
func TestSpecFacts(t *testing.T) {
	doc, err := openapi.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Servers[0].URL; got != "https://api.cloudflare.com/client/v4" {
		t.Errorf("default server = %q", got)
	}
	create := doc.Paths.Value("/accounts/{account_id}/calls/turn_keys").Post
	if create.Responses.Value("201") == nil {
		t.Error("createTurnKey has no 201 response")
	}
	ice := doc.Paths.Value("/turn/keys/{key_id}/credentials/generate-ice-servers")
	if len(ice.Servers) != 1 || ice.Servers[0].URL != "https://rtc.live.cloudflare.com/v1" {
		t.Errorf("generate-ice-servers servers = %v", ice.Servers)
	}
	if sec := *ice.Post.Security; len(sec) != 1 || sec[0]["turnKey"] == nil {
		t.Errorf("generate-ice-servers security = %v", sec)
	}
	failure := doc.Components.Responses["Failure"].Value
	if failure.Headers["cf-ray"] == nil || failure.Headers["Retry-After"] == nil {
		t.Error("envelope failures do not document cf-ray and Retry-After")
	}
	schemas := doc.Components.Schemas
	if s := schemas["AccountID"].Value; s.MaxLength == nil || *s.MaxLength != 32 {
		t.Error("AccountID must be at most 32 characters")
	}
	if s := schemas["KeyID"].Value; s.MinLength != 32 || s.MaxLength == nil || *s.MaxLength != 32 {
		t.Error("KeyID must be exactly 32 characters")
	}
	key := schemas["TurnKeyWithSecret"].Value.AllOf[1].Value.Properties["key"].Value
	if key.MinLength != 64 || key.MaxLength == nil || *key.MaxLength != 64 {
		t.Error("key must be exactly 64 characters")
	}
	ttl := schemas["IceServersRequest"].Value.Properties["ttl"].Value
	if ttl.Min == nil || *ttl.Min != 1 {
		t.Error("ttl must be a positive integer")
	}
}

// Where Cloudflare's published schema (cloudflare/api-schemas) is looser or says more than we once
// did, the spec follows it: tolerant key objects, required request bodies, failure envelopes with
// result null and codes from 1000, an empty object as a delete failure, the 48-hour ttl limit,
// customIdentifier, and the permission each key operation needs.
func TestSpecFollowsUpstreamSchema(t *testing.T) {
	doc, err := openapi.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	visit := func(name string, v any) error { return schemas[name].Value.VisitJSON(v) }

	if err := visit("TurnKey", map[string]any{}); err != nil {
		t.Errorf("a key object with no fields is refused: %v", err)
	}
	if def := schemas["TurnKey"].Value.Properties["name"].Value.Default; def != "" {
		t.Errorf("name defaults to %v, want ''", def)
	}
	if err := visit("TurnKey", map[string]any{"uid": "../../etc/passwd"}); err == nil {
		t.Error("a uid that is not a key ID passes")
	}
	keys := doc.Paths.Value("/accounts/{account_id}/calls/turn_keys")
	key := doc.Paths.Value("/accounts/{account_id}/calls/turn_keys/{key_id}")
	for name, op := range map[string]*openapi3.Operation{"create": keys.Post, "update": key.Put} {
		if !op.RequestBody.Value.Required {
			t.Errorf("%s request body is not required", name)
		}
	}

	failure := map[string]any{"success": false, "errors": []any{map[string]any{"code": 10000, "message": "Authentication error"}}, "messages": []any{}, "result": nil}
	if err := visit("FailureEnvelope", failure); err != nil {
		t.Errorf("failure with result null: %v", err)
	}
	failure["result"] = map[string]any{"uid": "x"}
	if err := visit("FailureEnvelope", failure); err == nil {
		t.Error("a failure with a result passes")
	}
	if err := visit("Message", map[string]any{"code": 999, "message": "m"}); err == nil {
		t.Error("an error code under 1000 passes")
	}
	del := key.Delete.Responses.Value("4XX").Value.Content.Get("application/json").Schema.Value
	if err := del.VisitJSON(map[string]any{}); err != nil {
		t.Errorf("{} as a delete failure: %v", err)
	}
	if err := del.VisitJSON(map[string]any{"success": false, "errors": []any{map[string]any{"code": 10006, "message": "not found"}}, "messages": []any{}}); err != nil {
		t.Errorf("an envelope as a delete failure: %v", err)
	}

	ice := schemas["IceServersRequest"].Value
	if ttl := ice.Properties["ttl"].Value; ttl.Max == nil || *ttl.Max != 172800 {
		t.Error("ttl has no maximum of 172800 seconds (48 hours)")
	}
	if err := ice.VisitJSON(map[string]any{"ttl": 86400, "customIdentifier": "user4523958"}); err != nil {
		t.Errorf("customIdentifier: %v", err)
	}

	for name, tc := range map[string]struct {
		op   *openapi3.Operation
		want string
	}{
		"list": {keys.Get, `"Calls Read" or "Calls Write"`}, "get": {key.Get, `"Calls Read" or "Calls Write"`},
		"create": {keys.Post, `"Calls Write"`}, "update": {key.Put, `"Calls Write"`}, "delete": {key.Delete, `"Calls Write"`},
	} {
		if !strings.Contains(tc.op.Description, tc.want) {
			t.Errorf("%s does not say it needs %s: %q", name, tc.want, tc.op.Description)
		}
	}
}
