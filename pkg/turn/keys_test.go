package turn_test

import (
	"context"
	"errors"
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
