package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	cloudflare "github.com/cloudflare/cloudflare-go/v7"
	"github.com/cloudflare/cloudflare-go/v7/calls"
	"github.com/cloudflare/cloudflare-go/v7/option"

	"github.com/cfturn/cfturn/pkg/turn"
)

// client runs one operation with one library.
type client struct {
	create, list, get func(context.Context) error
}

func floorClient(hc *http.Client, base string) client {
	f := &Floor{HC: hc, Base: base}
	return client{
		create: func(ctx context.Context) error { _, err := f.Create(ctx, "bench key"); return err },
		list:   func(ctx context.Context) error { _, err := f.List(ctx); return err },
		get:    func(ctx context.Context) error { _, err := f.Get(ctx, KeyID); return err },
	}
}

func turnClient(b *testing.B, hc *http.Client, base string) client {
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(Token), turn.WithAccountID(Account),
		turn.WithBaseURL(base), turn.WithHTTPClient(hc))
	if err != nil {
		b.Fatal(err)
	}
	return client{
		create: func(ctx context.Context) error {
			_, err := c.CreateKey(ctx, turn.CreateKeyParams{Name: "bench key"})
			return err
		},
		list: func(ctx context.Context) error { _, err := c.ListKeys(ctx, turn.ListKeysParams{}); return err },
		get:  func(ctx context.Context) error { _, err := c.GetKey(ctx, turn.KeyParams{KeyID: KeyID}); return err },
	}
}

func sdkClient(hc *http.Client, base string) client {
	c := cloudflare.NewClient(option.WithAPIToken(Token), option.WithBaseURL(base+"/"), option.WithHTTPClient(hc), option.WithMaxRetries(0))
	return client{
		create: func(ctx context.Context) error {
			_, err := c.Calls.TURN.New(ctx, calls.TURNNewParams{AccountID: cloudflare.F(Account), Name: cloudflare.F("bench key")})
			return err
		},
		list: func(ctx context.Context) error {
			_, err := c.Calls.TURN.List(ctx, calls.TURNListParams{AccountID: cloudflare.F(Account)})
			return err
		},
		get: func(ctx context.Context) error {
			_, err := c.Calls.TURN.Get(ctx, KeyID, calls.TURNGetParams{AccountID: cloudflare.F(Account)})
			return err
		},
	}
}

// BenchmarkClients runs create, list and get with each library, in memory and over loopback.
// Names: BenchmarkClients/<mode>/<op>/<library>.
func BenchmarkClients(b *testing.B) {
	srv := httptest.NewServer(Handler)
	defer srv.Close()
	modes := []struct {
		name string
		hc   *http.Client
		base string
	}{
		{"memory", &http.Client{Transport: InMemory{}}, "http://127.0.0.1/client/v4"},
		{"loopback", srv.Client(), srv.URL + "/client/v4"},
	}
	for _, m := range modes {
		libs := []struct {
			name string
			c    client
		}{
			{"floor", floorClient(m.hc, m.base)},
			{"cfturn", turnClient(b, m.hc, m.base)},
			{"sdk", sdkClient(m.hc, m.base)},
		}
		for _, op := range []string{"create", "list", "get"} {
			for _, lib := range libs {
				fn := map[string]func(context.Context) error{"create": lib.c.create, "list": lib.c.list, "get": lib.c.get}[op]
				b.Run(m.name+"/"+op+"/"+lib.name, func(b *testing.B) {
					ctx := context.Background()
					b.ReportAllocs()
					for b.Loop() {
						if err := fn(ctx); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkClientsInterleaved makes the calls of BenchmarkClients with the three libraries taking
// turns call by call (the order rotating), and reports each one's time per call and the ratios.
// On a shared machine load changes over a run; BenchmarkClients measures the libraries one after
// another, so a change falls on one of them, while here it falls on all three alike. The report
// takes its time ratios from here.
func BenchmarkClientsInterleaved(b *testing.B) {
	srv := httptest.NewServer(Handler)
	defer srv.Close()
	modes := []struct {
		name string
		hc   *http.Client
		base string
	}{
		{"memory", &http.Client{Transport: InMemory{}}, "http://127.0.0.1/client/v4"},
		{"loopback", srv.Client(), srv.URL + "/client/v4"},
	}
	for _, m := range modes {
		libs := [3]client{floorClient(m.hc, m.base), turnClient(b, m.hc, m.base), sdkClient(m.hc, m.base)}
		for _, op := range []string{"create", "list", "get"} {
			var fns [3]func(context.Context) error
			for i, c := range libs {
				fns[i] = map[string]func(context.Context) error{"create": c.create, "list": c.list, "get": c.get}[op]
			}
			b.Run(m.name+"/"+op, func(b *testing.B) {
				ctx := context.Background()
				var spent [3]time.Duration
				calls := 0
				for b.Loop() {
					for k := range fns {
						i := (calls + k) % len(fns)
						start := time.Now()
						if err := fns[i](ctx); err != nil {
							b.Fatal(err)
						}
						spent[i] += time.Since(start)
					}
					calls++
				}
				for i, name := range []string{"floor", "cfturn", "sdk"} {
					b.ReportMetric(float64(spent[i].Nanoseconds())/float64(calls), name+"-ns/call")
				}
				b.ReportMetric(float64(spent[1])/float64(spent[0]), "cfturn/floor")
				b.ReportMetric(float64(spent[2])/float64(spent[0]), "sdk/floor")
				b.ReportMetric(float64(spent[1])/float64(spent[2]), "cfturn/sdk")
			})
		}
	}
}
