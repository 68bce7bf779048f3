package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// fakeTokenEnv names the environment variable serve-fake takes its token from, so that it need not
// show in the process list as --token does.
const fakeTokenEnv = "CFTURN_FAKE_TOKEN"

func (a *app) serveFakeCommand() *cobra.Command {
	var addr, token, relayAddr, relayAdvertise, certOut string
	var noRelay, legacyURLs, relayTLS bool
	cmd := &cobra.Command{
		Use:   "serve-fake [--addr 127.0.0.1:8787] [--token T] [--relay-addr ADDR | --no-relay]",
		Short: "Run an offline fake of the Cloudflare TURN APIs until Ctrl-C",
		Long: `Run the turntest fake on a port: key management under /client/v4 and ICE credentials under /v1,
with the same shapes as Cloudflare's APIs, so cfturn, the Cloudflare SDKs and curl work against it.
State lives in memory and is gone when it stops.

It also attaches a TURN relay (UDP and TCP, on a free loopback port unless --relay-addr says
which) that accepts exactly the ICE credentials the fake minted, and its ICE answers point at it, so
WebRTC peers given them connect through it. With --no-relay the answers carry the URLs Cloudflare
documents (--legacy-ice-urls: the older set with port-53 URLs). --relay-tls adds TURN over TLS
(turns:) with a certificate made at start; --relay-cert-out writes it, for cfturn check --ca-file.
Off loopback (--relay-addr on a LAN address, 0.0.0.0 or [::]) the relay refuses peers on loopback,
private, link-local, multicast and unspecified addresses but its own, so that it opens no way into
the host or its network; on 0.0.0.0 or [::] it needs --relay-advertise, the address clients dial.
With --json the banner is one JSON object. Every failure it answers, and every connection its relay
refuses, is logged on stderr (never a token, key secret or ICE credential).

The API token it accepts comes from --token, else ` + fakeTokenEnv + `, else it is random; it is
printed at start. (CLOUDFLARE_API_TOKEN is never read here, so a real token is never printed.) The
default account comes from --account-id, else CLOUDFLARE_ACCOUNT_ID, else it is random. Both must
be values the client accepts.`,
		Example: `  CFTURN_FAKE_TOKEN=dev-token cfturn serve-fake --addr 127.0.0.1:8787
  cfturn serve-fake --json --relay-tls --relay-cert-out relay.pem`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkGlobalFlags(); err != nil {
				return err
			}
			if err := checkListenAddr("addr", addr); err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(a.stderr, nil))
			opts := []turntest.Option{turntest.WithAddr(addr), turntest.WithLogger(logger)}
			relayOpts := []turnrelay.Option{turnrelay.WithAddr(relayAddr), turnrelay.WithLogger(logger)}
			if host, _, err := net.SplitHostPort(relayAddr); err == nil && !noRelay && relayAdvertise == "" {
				if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
					return usagef("--relay-addr %s listens on every interface, which no client can dial: "+
						"add --relay-advertise with the address clients reach this host at, e.g. its LAN address", relayAddr)
				}
			}
			if relayAdvertise != "" {
				relayOpts = append(relayOpts, turnrelay.WithAdvertisedIP(relayAdvertise))
			}
			if legacyURLs {
				opts = append(opts, turntest.WithLegacyICEURLs())
			}
			switch {
			case relayTLS && noRelay:
				return usagef("--relay-tls needs the relay: drop --no-relay")
			case relayAdvertise != "" && noRelay:
				return usagef("--relay-advertise needs the relay: drop --no-relay")
			case certOut != "" && !relayTLS:
				return usagef("--relay-cert-out needs --relay-tls")
			case relayTLS:
				relayOpts = append(relayOpts, turnrelay.WithTLS())
			}
			tok, tokenFrom := token, "--token"
			if tok == "" {
				tok, tokenFrom = a.getenv(fakeTokenEnv), fakeTokenEnv
			}
			if tok != "" {
				// The client's own rules, so that every token the fake accepts works with cfturn.
				if _, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(tok)); err != nil {
					return renameOption(err, "WithAPIToken", tokenFrom)
				}
				opts = append(opts, turntest.WithToken(tok))
			}
			account, accountFrom := a.accountID, "--account-id"
			if account == "" {
				account, accountFrom = a.getenv("CLOUDFLARE_ACCOUNT_ID"), "CLOUDFLARE_ACCOUNT_ID"
			}
			if account != "" {
				if _, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAccountID(account)); err != nil {
					return renameOption(err, "WithAccountID", accountFrom)
				}
				opts = append(opts, turntest.WithAccountID(account))
			}
			srv, err := turntest.NewServerErr(opts...)
			if err != nil {
				return err
			}
			defer srv.Close()
			var r *turnrelay.Relay
			if !noRelay {
				if r, err = turnrelay.Attach(srv, relayOpts...); err != nil {
					return err
				}
				defer r.Close()
			}
			relay := "off (--no-relay): ICE answers carry Cloudflare's URLs"
			if r != nil {
				relay = fmt.Sprintf("udp %s, tcp %s", r.UDPAddr, r.TCPAddr)
			}
			if r != nil && r.TLSAddr != "" {
				relay += ", tls " + r.TLSAddr + " (self-signed)"
				if certOut != "" {
					// A certificate, not a secret: readable by all, but never written over a file.
					fh, err := os.OpenFile(certOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
					if err != nil {
						return usagef("--relay-cert-out: %v", err)
					}
					_, err = fh.Write(r.CertificatePEM())
					if cerr := fh.Close(); err == nil {
						err = cerr
					}
					if err != nil {
						return fmt.Errorf("--relay-cert-out %s: %w", certOut, err)
					}
				}
			}
			if a.json {
				out := map[string]string{
					"url": srv.URL, "apiBaseURL": srv.APIBaseURL, "iceBaseURL": srv.ICEBaseURL,
					"token": srv.Token(), "accountID": srv.AccountID(),
				}
				if r != nil {
					out["relayUDPAddr"], out["relayTCPAddr"] = r.UDPAddr, r.TCPAddr
					if r.TLSAddr != "" {
						out["relayTLSAddr"] = r.TLSAddr
					}
				}
				err = writeJSON(a.stdout, out)
			} else {
				_, err = fmt.Fprintf(a.stdout, `cfturn fake of the Cloudflare TURN APIs, listening on %s
  key API base URL   %s
  ICE API base URL   %s
  API token          %s
  account ID         %s
  TURN relay         %s

Try it:
  export CLOUDFLARE_API_TOKEN=%s CLOUDFLARE_ACCOUNT_ID=%s
  cfturn --base-url %s keys create --name test

Press Ctrl-C to stop.
`, srv.URL, srv.APIBaseURL, srv.ICEBaseURL, srv.Token(), srv.AccountID(), relay, srv.Token(), srv.AccountID(), srv.APIBaseURL)
			}
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			fmt.Fprintln(a.stderr, "cfturn: stopping the fake")
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8787", "address to listen on")
	cmd.Flags().StringVar(&token, "token", "", "API token the fake accepts (default $"+fakeTokenEnv+", else random; printed at start)")
	cmd.Flags().StringVar(&relayAddr, "relay-addr", "127.0.0.1:0", "address of the TURN relay, UDP and TCP (port 0: a free one)")
	cmd.Flags().StringVar(&relayAdvertise, "relay-advertise", "", "IP address the relay's URLs carry (default: --relay-addr's; needed with 0.0.0.0 or [::])")
	cmd.Flags().BoolVar(&noRelay, "no-relay", false, "run no TURN relay; ICE answers carry Cloudflare's URLs")
	cmd.Flags().BoolVar(&legacyURLs, "legacy-ice-urls", false, "with --no-relay, answer Cloudflare's older URL set, with port-53 URLs")
	cmd.Flags().BoolVar(&relayTLS, "relay-tls", false, "also serve TURN over TLS (turns:), with a self-signed certificate made at start")
	cmd.Flags().StringVar(&certOut, "relay-cert-out", "", "write the TLS certificate (PEM) to this new file, for cfturn check --ca-file")
	return cmd
}

func (a *app) demoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Walk a TURN key's whole life against the built-in fake (no account needed)",
		Long: `Create, list and rename a TURN key, mint ICE credentials, use them through the fake's TURN
relay, revoke them and delete the key, all against a fake started for the demo. With --json each
step is one JSON object on a line of its own.`,
		Example: "  cfturn demo\n  cfturn demo --json | jq -c '{step, title}'",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := turntest.NewServerErr()
			if err != nil {
				return err
			}
			defer srv.Close()
			relay, err := turnrelay.Attach(srv)
			if err != nil {
				return err
			}
			defer relay.Close()
			return a.demo(cmd.Context(), srv, relay)
		},
	}
}

// demoStep is one step of the demo: what a line of demo --json holds.
type demoStep struct {
	Step      int            `json:"step"`
	Title     string         `json:"title"`
	Operation string         `json:"operation,omitempty"`
	Result    map[string]any `json:"result,omitempty"`
	lines     []string
}

// demoPrinter prints the demo's steps as text or, with --json, as JSON lines.
type demoPrinter struct {
	a    *app
	step int
}

func (p *demoPrinter) print(s demoStep) error {
	if p.a.json {
		s.Title = strings.TrimSpace(s.Title)
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		_, err = p.a.stdout.Write(append(terminalSafeJSON(b), '\n'))
		return err
	}
	title := s.Title
	if s.Operation != "" {
		title += " (" + s.Operation + ")"
	}
	if s.Step > 0 {
		title = fmt.Sprintf("\n%d. %s", s.Step, title)
	}
	_, err := fmt.Fprintln(p.a.stdout, title)
	for _, l := range s.lines {
		if err == nil {
			_, err = fmt.Fprintln(p.a.stdout, "   "+l)
		}
	}
	return err
}

// next returns a new numbered step.
func (p *demoPrinter) next(title, operation string) demoStep {
	p.step++
	return demoStep{Step: p.step, Title: title, Operation: operation, Result: map[string]any{}}
}

// demo creates, lists, renames a key, mints and revokes ICE credentials and deletes the key,
// printing each step, and checks the credentials against relay unless it is nil. Credentials are
// shown redacted.
func (a *app) demo(ctx context.Context, srv *turntest.Server, relay *turnrelay.Relay) error {
	c := srv.Client()
	p := &demoPrinter{a: a}
	if err := p.print(demoStep{Title: "cfturn demo: an offline fake of Cloudflare's TURN APIs is running at " + srv.URL,
		Result: map[string]any{"fakeURL": srv.URL}}); err != nil {
		return err
	}

	s := p.next("Create a TURN key", "POST /accounts/{account_id}/calls/turn_keys")
	key, err := c.CreateKey(ctx, turn.CreateKeyParams{Name: "demo-key"})
	if err != nil {
		return err
	}
	s.Result["id"], s.Result["name"], s.Result["secret"] = key.ID, key.Name, key.Secret.String()
	s.lines = []string{fmt.Sprintf("id %s, name %q", key.ID, key.Name),
		fmt.Sprintf("secret: %d characters, shown once by Cloudflare; printed here as %v", len(key.Secret.Reveal()), key.Secret)}
	if err := p.print(s); err != nil {
		return err
	}

	s = p.next("List the account's keys", "GET .../turn_keys")
	keys, err := c.ListKeys(ctx, turn.ListKeysParams{})
	if err != nil {
		return err
	}
	s.Result["keys"] = keys
	for _, k := range keys {
		s.lines = append(s.lines, fmt.Sprintf("%s  %-12s created %s", k.ID, k.Name, k.Created.Format(time.RFC3339)))
	}
	if err := p.print(s); err != nil {
		return err
	}

	s = p.next("Rename it", "PUT .../turn_keys/{key_id}")
	renamed, err := c.UpdateKey(ctx, turn.UpdateKeyParams{KeyID: key.ID, Name: "demo-key-renamed"})
	if err != nil {
		return err
	}
	s.Result["name"], s.Result["modified"] = renamed.Name, renamed.Modified
	s.lines = []string{fmt.Sprintf("name %q, modified %s", renamed.Name, renamed.Modified.Format(time.RFC3339Nano))}
	if err := p.print(s); err != nil {
		return err
	}

	s = p.next("Mint ICE credentials valid for 1h", "POST /v1/turn/keys/{key_id}/credentials/generate-ice-servers")
	ice, err := c.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		return err
	}
	// A lone ICEServer marshals with its credentials redacted; json.Marshal(ice) is what a browser gets.
	pretty, err := json.MarshalIndent(map[string]any{"iceServers": ice.Servers}, "   ", "  ")
	if err != nil {
		return err
	}
	s.Result["iceServers"], s.Result["expires"] = ice.Servers, ice.Expires
	s.lines = []string{"this is what a browser passes to new RTCPeerConnection (credentials redacted here):",
		string(pretty), "expires " + ice.Expires.Format(time.RFC3339)}
	if relay != nil {
		s.lines = append(s.lines, "they open the fake's TURN relay: two allocations each, a packet through both and back (cfturn check):")
		if s.Result["check"], err = a.demoCheck(ctx, ice, &s.lines); err != nil {
			return err
		}
	}
	if err := p.print(s); err != nil {
		return err
	}

	var username string
	for _, srv := range ice.Servers {
		if srv.Username != "" {
			username = srv.Username
		}
	}
	s = p.next("Revoke that credential", "POST /v1/turn/keys/{key_id}/credentials/{username}/revoke")
	if err := c.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: key.Secret, Username: username}); err != nil {
		return err
	}
	s.Result["revoked"] = srv.Revoked(username)
	s.lines = []string{fmt.Sprintf("revoked: %v", srv.Revoked(username))}
	if relay != nil {
		s.lines = append(s.lines, "the relay now refuses it:")
		if s.Result["check"], err = a.demoCheck(ctx, ice, &s.lines); err != nil {
			return err
		}
	}
	if err := p.print(s); err != nil {
		return err
	}

	if err := a.demoUsage(ctx, srv, p); err != nil {
		return err
	}

	s = p.next("Delete the key", "DELETE .../turn_keys/{key_id}")
	if _, err := c.DeleteKey(ctx, turn.KeyParams{KeyID: key.ID}); err != nil {
		return err
	}
	keys, err = c.ListKeys(ctx, turn.ListKeysParams{})
	if err != nil {
		return err
	}
	s.Result["keysLeft"] = len(keys)
	s.lines = []string{fmt.Sprintf("keys left: %d", len(keys))}
	if err := p.print(s); err != nil {
		return err
	}

	next := "cfturn keys create --name my-key --out turn-key.secret"
	return p.print(demoStep{Title: "\nDone. Against Cloudflare, set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID and run:",
		Result: map[string]any{"done": true, "next": next, "install": "go install ./cmd/cfturn"},
		lines: []string{next, `(from a clone, "go run ./cmd/cfturn" works wherever cfturn appears; "go install ./cmd/cfturn"`,
			` puts cfturn in $(go env GOPATH)/bin)`}})
}

// demoCheck runs turncheck on the TURN URLs of ice, adds one line per URL to lines and returns the
// results.
func (a *app) demoCheck(ctx context.Context, ice turn.ICEServers, lines *[]string) ([]turncheck.Result, error) {
	var servers []turn.ICEServer
	for _, s := range ice.Servers {
		if s.Username != "" {
			servers = append(servers, s)
		}
	}
	report, err := turncheck.Check(ctx, servers, turncheck.Config{})
	if err != nil {
		return nil, err
	}
	for _, r := range report.Results {
		if r.Status == turncheck.StatusOK {
			*lines = append(*lines, fmt.Sprintf("%-40s %s, relayed address %s, round trip %v", r.URL, r.Status, r.RelayedAddress, r.RTT.Round(time.Microsecond)))
		} else {
			*lines = append(*lines, fmt.Sprintf("%-40s %s: %s", r.URL, r.Status, r.Detail))
		}
	}
	return report.Results, nil
}
