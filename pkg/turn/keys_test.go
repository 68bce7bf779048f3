package turn_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfturn/cfturn/pkg/turn"
)

func TestKeyLifecycle(t *testing.T) {
	e := setup(t)
	ctx := context.Background()

	created, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.ID) != 32 || len(created.Secret.Reveal()) != 64 || created.Name != "first" {
		t.Fatalf("created = id %q (%d) name %q secret of %d chars", created.ID, len(created.ID), created.Name, len(created.Secret.Reveal()))
	}
	if created.Created.IsZero() || !created.Created.Equal(created.Modified) {
		t.Errorf("created %v modified %v", created.Created, created.Modified)
	}
	unnamed, err := e.client.CreateKey(ctx, turn.CreateKeyParams{})
	if err != nil {
		t.Fatal(err)
	}

	list, err := e.client.ListKeys(ctx, turn.ListKeysParams{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]turn.Key{created.Key, unnamed.Key}, list); diff != "" {
		t.Errorf("ListKeys (-want +got):\n%s", diff)
	}
	var iterated []turn.Key
	for k, err := range e.client.AllKeys(ctx, turn.ListKeysParams{}) {
		if err != nil {
			t.Fatal(err)
		}
		iterated = append(iterated, k)
	}
	if diff := cmp.Diff(list, iterated); diff != "" {
		t.Errorf("AllKeys (-ListKeys +AllKeys):\n%s", diff)
	}

	got, err := e.client.GetKey(ctx, turn.KeyParams{KeyID: created.ID})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created.Key, got); diff != "" {
		t.Errorf("GetKey (-want +got):\n%s", diff)
	}

	renamed, err := e.client.UpdateKey(ctx, turn.UpdateKeyParams{KeyID: created.ID, Name: "renamed"})
	if err != nil {
		t.Fatal(err)
	}
	if renamed.Name != "renamed" || !renamed.Modified.After(created.Modified) || !renamed.Created.Equal(created.Created) {
		t.Errorf("renamed = %+v, created = %+v", renamed, created.Key)
	}

	deleted, err := e.client.DeleteKey(ctx, turn.KeyParams{KeyID: created.ID})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(renamed, deleted); diff != "" {
		t.Errorf("DeleteKey (-want +got):\n%s", diff)
	}
	_, err = e.client.GetKey(ctx, turn.KeyParams{KeyID: created.ID})
	if !errors.Is(err, turn.ErrNotFound) {
		t.Fatalf("GetKey after delete: %v, want ErrNotFound", err)
	}
	if got := e.fake.Keys(e.fake.AccountID()); len(got) != 1 || got[0].ID != unnamed.ID {
		t.Errorf("fake holds %v, want only %s", got, unnamed.ID)
	}
}

func TestExplicitAccountOverridesDefault(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	other := "0123456789abcdef0123456789abcdef"
	k, err := e.client.CreateKey(ctx, turn.CreateKeyParams{AccountID: other, Name: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := e.client.ListKeys(ctx, turn.ListKeysParams{})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := e.client.ListKeys(ctx, turn.ListKeysParams{AccountID: other})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 0 || len(theirs) != 1 || theirs[0].ID != k.ID {
		t.Errorf("default account has %v, other has %v", mine, theirs)
	}
	if _, err := e.client.GetKey(ctx, turn.KeyParams{KeyID: k.ID}); !errors.Is(err, turn.ErrNotFound) {
		t.Errorf("key of another account seen from the default one: %v", err)
	}
}

func TestICEServersLifecycle(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	key, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: "ice"})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	ice, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(ice.Servers) != 2 || ice.Servers[1].Username == "" || ice.Servers[1].Credential.IsZero() {
		t.Fatalf("ice = %v", ice)
	}
	if ice.Expires.Before(before.Add(time.Hour)) || ice.Expires.After(time.Now().Add(time.Hour)) {
		t.Errorf("Expires = %v, want about an hour from now", ice.Expires)
	}
	username := ice.Servers[1].Username
	if err := e.client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: key.Secret, Username: username}); err != nil {
		t.Fatal(err)
	}
	if !e.fake.Revoked(username) {
		t.Error("the fake did not record the revocation")
	}

	wrong := turn.NewSecret(key.Secret.Reveal()[:63] + "x")
	_, err = e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: wrong, TTL: time.Hour})
	if !errors.Is(err, turn.ErrUnauthorized) {
		t.Errorf("wrong secret: %v, want ErrUnauthorized", err)
	}
}

// Every operation of the spec is exercised through the contract-validating transport.
func TestEveryOperationValidated(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	k, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []error{
		func() error { _, err := e.client.ListKeys(ctx, turn.ListKeysParams{}); return err }(),
		func() error { _, err := e.client.GetKey(ctx, turn.KeyParams{KeyID: k.ID}); return err }(),
		func() error {
			_, err := e.client.UpdateKey(ctx, turn.UpdateKeyParams{KeyID: k.ID, Name: "b"})
			return err
		}(),
	}
	ice, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: k.ID, KeySecret: k.Secret, TTL: time.Minute})
	steps = append(steps, err,
		e.client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: k.ID, KeySecret: k.Secret, Username: ice.Servers[1].Username}),
		func() error { _, err := e.client.DeleteKey(ctx, turn.KeyParams{KeyID: k.ID}); return err }(),
	)
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	seen := e.contract.Seen()
	for _, op := range []string{"createTurnKey", "listTurnKeys", "getTurnKey", "updateTurnKey", "deleteTurnKey", "generateIceServers", "revokeIceCredential"} {
		if seen[op] == 0 {
			t.Errorf("%s was never validated against the spec", op)
		}
	}
}

// Key objects are read as Cloudflare's schema defines them: no field is required and name
// defaults to ”. What the client relies on is still checked: a valid uid everywhere, and the
// 64-character secret of a new key.
func TestKeysReadTolerantly(t *testing.T) {
	ctx := context.Background()
	ok := func(result string) string {
		return `{"success":true,"errors":[],"messages":[],"result":` + result + `}`
	}
	c := canned(t, 200, "application/json", ok(`{"uid":"`+testKeyID+`"}`), nil)
	k, err := c.GetKey(ctx, turn.KeyParams{KeyID: testKeyID})
	if err != nil || k != (turn.Key{ID: testKeyID}) {
		t.Errorf("key with only a uid: %+v, %v", k, err)
	}
	list, err := canned(t, 200, "application/json", ok(`[{"uid":"`+testKeyID+`","name":""},{"uid":"`+testKeyID+`","created":"2024-01-01T00:00:00Z"}]`), nil).ListKeys(ctx, turn.ListKeysParams{})
	if err != nil || len(list) != 2 || list[1].Created.IsZero() {
		t.Errorf("list without names: %+v, %v", list, err)
	}
	created, err := canned(t, 201, "application/json", ok(`{"uid":"`+testKeyID+`","key":"`+testSecret+`"}`), nil).CreateKey(ctx, turn.CreateKeyParams{})
	if err != nil || created.Secret.Reveal() != testSecret || created.Name != "" {
		t.Errorf("created key without name: %+v, %v", created, err)
	}

	for _, tc := range []struct {
		name, status, body, want string
	}{
		{"get: no uid", "200", ok(`{"name":"n"}`), "the key's uid is not a TURN key ID: key ID is empty"},
		{"get: path in uid", "200", ok(`{"uid":"../../etc/passwd"}`), "the key's uid is not a TURN key ID: key ID is 16 characters long"},
		{"get: uid with a slash", "200", ok(`{"uid":"2a95132c15732412d22c1476fa83f2/a"}`), `key ID "2a95132c15732412d22c1476fa83f2/a" has '/' at character 31`},
		{"list: one bad uid", "200", ok(`[{"uid":"` + testKeyID + `"},{"uid":"../x"}]`), "key 2 of 2 has a uid that is not a TURN key ID: key ID is 4 characters long"},
		{"create: no key", "201", ok(`{"uid":"` + testKeyID + `"}`), "the new key's secret is 0 characters long, not 64"},
		{"create: short key", "201", ok(`{"uid":"` + testKeyID + `","key":"short-secret-abc"}`), "the new key's secret is 16 characters long, not 64"},
		{"create: bad uid", "201", ok(`{"uid":"..","key":"` + testSecret + `"}`), "the new key's uid is not a TURN key ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := map[string]int{"200": 200, "201": 201}[tc.status]
			c := canned(t, status, "application/json", tc.body, nil)
			var err error
			switch {
			case strings.HasPrefix(tc.name, "get"):
				_, err = c.GetKey(ctx, turn.KeyParams{KeyID: testKeyID})
			case strings.HasPrefix(tc.name, "list"):
				_, err = c.ListKeys(ctx, turn.ListKeysParams{})
			default:
				_, err = c.CreateKey(ctx, turn.CreateKeyParams{})
			}
			if !errors.Is(err, turn.ErrUnexpectedResponse) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want ErrUnexpectedResponse saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "short-secret") || strings.Contains(err.Error(), testSecret) {
				t.Errorf("a secret reached the error: %v", err)
			}
		})
	}
}

// UpdateKey with an empty name clears it, as the API allows.
func TestUpdateKeyEmptyNameClears(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	k, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: "named"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.UpdateKey(ctx, turn.UpdateKeyParams{KeyID: k.ID})
	if err != nil || got.Name != "" || got.ID != k.ID {
		t.Fatalf("UpdateKey with no name: %+v, %v", got, err)
	}
	if again, err := e.client.GetKey(ctx, turn.KeyParams{KeyID: k.ID}); err != nil || again.Name != "" {
		t.Errorf("name after clearing: %q, %v", again.Name, err)
	}
}

// Cloudflare's current answer and the older one with port-53 URLs both decode, and marshal back
// for the browser unchanged: filtering URLs is the caller's choice, not the client's.
func TestICEAnswersCurrentAndOlder(t *testing.T) {
	for name, urls := range map[string][2]string{
		"current": {`["stun:stun.cloudflare.com:3478"]`, `["turn:turn.cloudflare.com:3478?transport=udp","turn:turn.cloudflare.com:443?transport=udp","turn:turn.cloudflare.com:3478?transport=tcp","turn:turn.cloudflare.com:80?transport=tcp","turns:turn.cloudflare.com:5349?transport=tcp","turns:turn.cloudflare.com:443?transport=tcp"]`},
		"older":   {`["stun:stun.cloudflare.com:3478","stun:stun.cloudflare.com:53"]`, `["turn:turn.cloudflare.com:3478?transport=udp","turn:turn.cloudflare.com:53?transport=udp","turn:turn.cloudflare.com:3478?transport=tcp","turn:turn.cloudflare.com:80?transport=tcp","turns:turn.cloudflare.com:5349?transport=tcp","turns:turn.cloudflare.com:443?transport=tcp"]`},
	} {
		body := `{"iceServers":[{"urls":` + urls[0] + `},{"urls":` + urls[1] + `,"username":"u","credential":"c"}]}`
		c := canned(t, 201, "application/json", body, nil)
		ice, err := c.GenerateICEServers(context.Background(), turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: turn.NewSecret(testSecret), TTL: time.Hour})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := json.Marshal(ice)
		if err != nil || string(out) != body {
			t.Errorf("%s: marshalled\n%s\nwant\n%s (%v)", name, out, body, err)
		}
	}
}

// Requests go to the operation's path under the base URLs' own paths, the revoke username escaped
// into its one segment: the generated builders append to the base URL and do not resolve against
// it, and a '%' in a username (which validation lets through: it is a token character) is sent as
// %25, never read as an escape.
func TestRequestsKeepBasePathAndEscapeUsername(t *testing.T) {
	paths := make(chan string, 4)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.Method + " " + r.URL.EscapedPath()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ts.Close()
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(testToken), turn.WithAccountID(testAccount),
		turn.WithBaseURL(ts.URL+"/deep/client/v4"), turn.WithICEBaseURL(ts.URL+"/deep/v1"), turn.WithRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	err = c.RevokeICECredential(context.Background(), turn.RevokeICECredentialParams{KeyID: testKeyID, KeySecret: turn.NewSecret(testSecret), Username: "1700000000:a%2Fb"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := <-paths, "POST /deep/v1/turn/keys/"+testKeyID+"/credentials/1700000000:a%252Fb/revoke"; got != want {
		t.Errorf("revoke sent %s, want %s", got, want)
	}
	if _, err := c.GetKey(context.Background(), turn.KeyParams{KeyID: testKeyID}); !errors.Is(err, turn.ErrUnexpectedResponse) {
		t.Errorf("get answered 204 without a body: %v, want ErrUnexpectedResponse", err)
	}
	if got, want := <-paths, "GET /deep/client/v4/accounts/"+testAccount+"/calls/turn_keys/"+testKeyID; got != want {
		t.Errorf("get sent %s, want %s", got, want)
	}
}
