package bench

import (
	"context"
	"errors"
	"testing"

	cloudflare "github.com/cloudflare/cloudflare-go/v7"
	"github.com/cloudflare/cloudflare-go/v7/calls"
	"github.com/cloudflare/cloudflare-go/v7/option"

	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// The official Cloudflare Go SDK works against the fake unchanged, given its base URL.
func TestOfficialSDKAgainstFake(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	cf := cloudflare.NewClient(option.WithAPIToken(srv.Token()), option.WithBaseURL(srv.APIBaseURL+"/"), option.WithMaxRetries(0))
	ctx := context.Background()
	account := cloudflare.F(srv.AccountID())

	created, err := cf.Calls.TURN.New(ctx, calls.TURNNewParams{AccountID: account, Name: cloudflare.F("sdk key")})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.UID) != 32 || len(created.Key) != 64 || created.Name != "sdk key" || created.Created.IsZero() {
		t.Fatalf("New = %+v", created)
	}
	page, err := cf.Calls.TURN.List(ctx, calls.TURNListParams{AccountID: account})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Result) != 1 || page.Result[0].UID != created.UID {
		t.Fatalf("List = %+v", page.Result)
	}
	var n int
	iter := cf.Calls.TURN.ListAutoPaging(ctx, calls.TURNListParams{AccountID: account})
	for iter.Next() {
		n++
	}
	if iter.Err() != nil || n != 1 {
		t.Fatalf("ListAutoPaging: %d keys, %v", n, iter.Err())
	}
	got, err := cf.Calls.TURN.Get(ctx, created.UID, calls.TURNGetParams{AccountID: account})
	if err != nil || got.UID != created.UID {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	updated, err := cf.Calls.TURN.Update(ctx, created.UID, calls.TURNUpdateParams{AccountID: account, Name: cloudflare.F("renamed")})
	if err != nil || updated.Name != "renamed" || !updated.Modified.After(created.Modified) {
		t.Fatalf("Update = %+v, %v", updated, err)
	}
	deleted, err := cf.Calls.TURN.Delete(ctx, created.UID, calls.TURNDeleteParams{AccountID: account})
	if err != nil || deleted.UID != created.UID {
		t.Fatalf("Delete = %+v, %v", deleted, err)
	}
	_, err = cf.Calls.TURN.Get(ctx, created.UID, calls.TURNGetParams{AccountID: account})
	var apiErr *cloudflare.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("Get after delete: %v", err)
	}
}
