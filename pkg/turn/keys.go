package turn

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cfturn/cfturn/gen/calls"
	"github.com/cfturn/cfturn/gen/callsclient"
)

// Key is a TURN key as the API lists it, without its secret.
type Key struct {
	ID       string    `json:"uid"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Modified time.Time `json:"modified"`
}

// KeyWithSecret is a key just created, with its secret. Cloudflare returns the secret once and never
// again: store it before doing anything else. The secret prints as [REDACTED]; read it with
// Secret.Reveal.
type KeyWithSecret struct {
	Key
	Secret Secret `json:"key"`
}

// LogValue implements slog.LogValuer, so logging a key shows its id and name only.
func (k KeyWithSecret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("uid", k.ID), slog.String("name", k.Name), slog.String("key", redacted))
}

// CreateKeyParams are the arguments of CreateKey.
type CreateKeyParams struct {
	AccountID string // empty: the client's default account
	Name      string // optional short description, not shown to end users
}

// KeyParams name one key, for GetKey and DeleteKey.
type KeyParams struct {
	AccountID string // empty: the client's default account
	KeyID     string // the key's uid, 32 characters
}

// UpdateKeyParams are the arguments of UpdateKey.
type UpdateKeyParams struct {
	AccountID string // empty: the client's default account
	KeyID     string // the key's uid, 32 characters
	Name      string // the new name; empty clears it, as the API allows
}

// ListKeysParams are the arguments of ListKeys and AllKeys.
type ListKeysParams struct {
	AccountID string // empty: the client's default account
}

var (
	opCreateKey = &operation{Operation: callsclient.CreateTurnKeyOperation, name: "create key", envelope: true, retry: retryUnsent}
	opListKeys  = &operation{Operation: callsclient.ListTurnKeysOperation, name: "list keys", envelope: true}
	opGetKey    = &operation{Operation: callsclient.GetTurnKeyOperation, name: "get key", envelope: true}
	opUpdateKey = &operation{Operation: callsclient.UpdateTurnKeyOperation, name: "update key", envelope: true}
	opDeleteKey = &operation{Operation: callsclient.DeleteTurnKeyOperation, name: "delete key", envelope: true, emptyFailure: true}
)

// CreateKey creates a TURN key and returns it with its secret, which Cloudflare shows only this once.
//
// It is retried only when the request surely never reached Cloudflare (see the package
// documentation), so a retry cannot leave behind a key whose secret nobody saw.
//
// API: POST /accounts/{account_id}/calls/turn_keys
// (https://developers.cloudflare.com/api/resources/calls/subresources/turn/methods/create/)
func (c *Client) CreateKey(ctx context.Context, p CreateKeyParams) (KeyWithSecret, error) {
	op := opCreateKey
	account, token, err := c.keyCallSetup(op, p.AccountID, "")
	if err != nil {
		return KeyWithSecret{}, err
	}
	body := calls.TurnKeyCreateRequest{}
	if p.Name != "" {
		body.Name = &p.Name
	}
	req, err := callsclient.NewCreateTurnKeyRequest(c.cfg.apiBase, account, body)
	if err != nil {
		return KeyWithSecret{}, buildError(op, err)
	}
	res, err := c.send(ctx, op, req, token)
	if err != nil {
		return KeyWithSecret{}, err
	}
	k, err := decodeEnvelope[calls.TurnKeyWithSecret](op, res, []Secret{token})
	if err != nil {
		return KeyWithSecret{}, err
	}
	secrets := []Secret{token, NewSecret(k.Key)}
	if msg := keyIDProblem(k.Uid); msg != "" {
		return KeyWithSecret{}, unexpected(op, res, secrets, "the new key's uid is not a TURN key ID: "+msg)
	}
	if n := utf8.RuneCountInString(k.Key); n != keySecretLen {
		return KeyWithSecret{}, unexpected(op, res, secrets, fmt.Sprintf("the new key's secret is %d characters long, not %d", n, keySecretLen))
	}
	return KeyWithSecret{
		Key:    Key{ID: k.Uid, Name: k.Name, Created: k.Created, Modified: k.Modified},
		Secret: NewSecret(k.Key),
	}, nil
}

// ListKeys returns every TURN key of the account, without secrets.
//
// API: GET /accounts/{account_id}/calls/turn_keys
// (https://developers.cloudflare.com/api/resources/calls/subresources/turn/methods/list/)
func (c *Client) ListKeys(ctx context.Context, p ListKeysParams) ([]Key, error) {
	op := opListKeys
	account, token, err := c.keyCallSetup(op, p.AccountID, "")
	if err != nil {
		return nil, err
	}
	req, err := callsclient.NewListTurnKeysRequest(c.cfg.apiBase, account)
	if err != nil {
		return nil, buildError(op, err)
	}
	res, err := c.send(ctx, op, req, token)
	if err != nil {
		return nil, err
	}
	list, err := decodeEnvelope[[]calls.TurnKey](op, res, []Secret{token})
	if err != nil {
		return nil, err
	}
	keys := make([]Key, len(list))
	for i, k := range list {
		if msg := keyIDProblem(k.Uid); msg != "" {
			return nil, unexpected(op, res, []Secret{token}, fmt.Sprintf("key %d of %d has a uid that is not a TURN key ID: %s", i+1, len(list), msg))
		}
		keys[i] = keyOf(k)
	}
	return keys, nil
}

// AllKeys yields every TURN key of the account. On failure it yields one zero Key with the error and
// stops. The API returns all keys in one response, so this is ListKeys in range-over-func form.
//
// API: GET /accounts/{account_id}/calls/turn_keys
func (c *Client) AllKeys(ctx context.Context, p ListKeysParams) iter.Seq2[Key, error] {
	return func(yield func(Key, error) bool) {
		keys, err := c.ListKeys(ctx, p)
		if err != nil {
			yield(Key{}, err)
			return
		}
		for _, k := range keys {
			if !yield(k, nil) {
				return
			}
		}
	}
}

// GetKey returns one TURN key, without its secret.
//
// API: GET /accounts/{account_id}/calls/turn_keys/{key_id}
// (https://developers.cloudflare.com/api/resources/calls/subresources/turn/methods/get/)
func (c *Client) GetKey(ctx context.Context, p KeyParams) (Key, error) {
	op := opGetKey
	account, token, err := c.keyCallSetup(op, p.AccountID, p.KeyID)
	if err != nil {
		return Key{}, err
	}
	req, err := callsclient.NewGetTurnKeyRequest(c.cfg.apiBase, account, p.KeyID)
	if err != nil {
		return Key{}, buildError(op, err)
	}
	return c.sendKey(ctx, op, req, token)
}

// UpdateKey renames a TURN key and returns it, without its secret. The secret does not change.
//
// API: PUT /accounts/{account_id}/calls/turn_keys/{key_id}
// (https://developers.cloudflare.com/api/resources/calls/subresources/turn/methods/update/)
func (c *Client) UpdateKey(ctx context.Context, p UpdateKeyParams) (Key, error) {
	op := opUpdateKey
	account, token, err := c.keyCallSetup(op, p.AccountID, p.KeyID)
	if err != nil {
		return Key{}, err
	}
	req, err := callsclient.NewUpdateTurnKeyRequest(c.cfg.apiBase, account, p.KeyID, calls.TurnKeyUpdateRequest{Name: &p.Name})
	if err != nil {
		return Key{}, buildError(op, err)
	}
	return c.sendKey(ctx, op, req, token)
}

// DeleteKey deletes a TURN key and returns it as it was. Credentials minted from it stop working.
//
// API: DELETE /accounts/{account_id}/calls/turn_keys/{key_id}
// (https://developers.cloudflare.com/api/resources/calls/subresources/turn/methods/delete/)
func (c *Client) DeleteKey(ctx context.Context, p KeyParams) (Key, error) {
	op := opDeleteKey
	account, token, err := c.keyCallSetup(op, p.AccountID, p.KeyID)
	if err != nil {
		return Key{}, err
	}
	req, err := callsclient.NewDeleteTurnKeyRequest(c.cfg.apiBase, account, p.KeyID)
	if err != nil {
		return Key{}, buildError(op, err)
	}
	return c.sendKey(ctx, op, req, token)
}

// keyCallSetup checks what every key-management call needs before any I/O: the token, the account
// and, for operations on one key, the key ID.
func (c *Client) keyCallSetup(op *operation, accountID, keyID string) (string, Secret, error) {
	token, err := c.apiToken(op.name)
	if err != nil {
		return "", Secret{}, err
	}
	account, err := c.account(op.name, accountID)
	if err != nil {
		return "", Secret{}, err
	}
	if strings.Contains(op.Path, "{key_id}") {
		if err := checkKeyID(op.name, keyID); err != nil {
			return "", Secret{}, err
		}
	}
	return account, token, nil
}

// sendKey sends a request whose result is one key without secret.
func (c *Client) sendKey(ctx context.Context, op *operation, req *http.Request, token Secret) (Key, error) {
	res, err := c.send(ctx, op, req, token)
	if err != nil {
		return Key{}, err
	}
	k, err := decodeEnvelope[calls.TurnKey](op, res, []Secret{token})
	if err != nil {
		return Key{}, err
	}
	if msg := keyIDProblem(k.Uid); msg != "" {
		return Key{}, unexpected(op, res, []Secret{token}, "the key's uid is not a TURN key ID: "+msg)
	}
	return keyOf(k), nil
}

func keyOf(k calls.TurnKey) Key {
	return Key{ID: k.Uid, Name: k.Name, Created: k.Created, Modified: k.Modified}
}

// buildError reports a request that could not be built; validation makes this unreachable for
// well-formed arguments.
func buildError(op *operation, err error) error {
	return fmt.Errorf("turn: %s: building request: %w", op.name, err)
}
