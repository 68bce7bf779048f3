package openapi_test

import (
	"context"
	"slices"
	"testing"

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
