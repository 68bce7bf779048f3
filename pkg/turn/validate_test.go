package turn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Malformed arguments are refused before any I/O, with an error naming the value and the fix.
func TestValidationSendsNothing(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	secret := turn.NewSecret(strings.Repeat("s", 64))
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"long account", func() error {
			_, err := e.client.ListKeys(ctx, turn.ListKeysParams{AccountID: strings.Repeat("a", 33)})
			return err
		}, "account ID is 33 characters long"},
		{"account with slash", func() error {
			_, err := e.client.CreateKey(ctx, turn.CreateKeyParams{AccountID: "abc/../x"})
			return err
		}, `account ID "abc/../x" has '/' at position 4`},
		{"empty key id", func() error { _, err := e.client.GetKey(ctx, turn.KeyParams{}); return err }, "key ID is empty"},
		{"short key id", func() error { _, err := e.client.DeleteKey(ctx, turn.KeyParams{KeyID: "abc"}); return err }, "key ID is 3 characters long; TURN key IDs have exactly 32"},
		{"key id with space", func() error {
			_, err := e.client.GetKey(ctx, turn.KeyParams{KeyID: "2a95132c15732412d22c1476fa83f27 "})
			return err
		}, "has ' ' at position 32"},
		{"empty rename", func() error {
			_, err := e.client.UpdateKey(ctx, turn.UpdateKeyParams{KeyID: testKeyID})
			return err
		}, "name is empty"},
		{"zero ttl", func() error {
			_, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: secret})
			return err
		}, "TTL 0s must be positive"},
		{"negative ttl", func() error {
			_, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: secret, TTL: -time.Hour})
			return err
		}, "TTL -1h0m0s must be positive"},
		{"fractional ttl", func() error {
			_, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: secret, TTL: 1500 * time.Millisecond})
			return err
		}, "TTL 1.5s is not a whole number of seconds"},
		{"no secret", func() error {
			_, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, TTL: time.Hour})
			return err
		}, "key secret is empty"},
		{"no username", func() error {
			return e.client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: testKeyID, KeySecret: secret})
		}, "username is empty"},
		{"username with slash", func() error {
			return e.client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: testKeyID, KeySecret: secret, Username: "a/b"})
		}, "username contains '/'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, turn.ErrInvalidArgument) {
				t.Fatalf("%v, want ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q does not say %q", err, tc.want)
			}
		})
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Errorf("invalid calls reached the server: %v", e.fake.Requests())
	}
}

// A credential passed where an ID belongs is not echoed back.
func TestValidationDoesNotEchoLongValues(t *testing.T) {
	e := setup(t)
	leaked := strings.Repeat("k", 64)
	_, err := e.client.GetKey(context.Background(), turn.KeyParams{KeyID: leaked})
	if err == nil || strings.Contains(err.Error(), leaked) {
		t.Fatalf("error %v echoes the value", err)
	}
	_, err = e.client.ListKeys(context.Background(), turn.ListKeysParams{AccountID: leaked})
	if err == nil || strings.Contains(err.Error(), leaked) {
		t.Fatalf("error %v echoes the value", err)
	}
}

func TestNoAPIToken(t *testing.T) {
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAccountID(testAccount))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListKeys(context.Background(), turn.ListKeysParams{})
	if !errors.Is(err, turn.ErrNoAPIToken) || !strings.Contains(err.Error(), "CLOUDFLARE_API_TOKEN") {
		t.Fatalf("%v, want ErrNoAPIToken naming CLOUDFLARE_API_TOKEN", err)
	}
}

func TestNoAccount(t *testing.T) {
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(testToken))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListKeys(context.Background(), turn.ListKeysParams{})
	if !errors.Is(err, turn.ErrInvalidArgument) || !strings.Contains(err.Error(), "CLOUDFLARE_ACCOUNT_ID") {
		t.Fatalf("%v, want ErrInvalidArgument naming CLOUDFLARE_ACCOUNT_ID", err)
	}
}
