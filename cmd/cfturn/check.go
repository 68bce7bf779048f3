package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
)

// maxICEInput bounds what check reads from a file or stdin.
const maxICEInput = 1 << 20

func (a *app) checkCommand() *cobra.Command {
	var flags iceFlags
	var file, caFile string
	var cfg turncheck.Config
	cmd := &cobra.Command{
		Use:   "check (--key-id ID | --file FILE | --file -) [--timeout 5s]",
		Short: "Check that ICE servers work: STUN, TURN over udp/tcp/tls, and a packet through the relay",
		Long: `Probe every URL of an iceServers list at once: a STUN binding request, a TURN allocation over
udp, tcp or tls, and a packet sent through two relays and back to time a real round trip.

The list is minted with --key-id (the secret from CFTURN_KEY_SECRET or --key-secret-file, as for
ice-servers; the credential is revoked afterwards), or read with --file from a file or from stdin
(--file -), e.g. the output of "cfturn ice-servers" or of a serve-ice endpoint. Port-53 URLs are
skipped, as browsers block them (--include-port-53 probes them). The whole check ends within
--timeout.

Exit status: 0 when at least one TURN URL carried a packet, 1 when none did, 2 on bad input.`,
		Example: `  cfturn check --key-id "$KEY_ID" --key-secret-file turn-key.secret
  curl -s http://127.0.0.1:8080/ | cfturn check --file - --json
  cfturn check --file ice.json --ca-file relay.pem --timeout 10s`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Timeout <= 0 || cfg.Timeout > turncheck.MaxTimeout {
				return usagef("--timeout %v: want a duration above 0 and at most %v, e.g. 10s", cfg.Timeout, turncheck.MaxTimeout)
			}
			servers, cleanup, err := a.checkInput(cmd.Context(), &flags, file)
			if err != nil {
				return err
			}
			defer cleanup()
			if caFile != "" {
				if cfg.TLSConfig, err = readCAFile(caFile); err != nil {
					return err
				}
			}
			report, err := turncheck.Check(cmd.Context(), servers, cfg)
			if errors.Is(err, turncheck.ErrBadInput) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if err := a.printReport(report, caFile != ""); err != nil {
				return err
			}
			if !report.TURNWorks() {
				return errors.New("check: no TURN URL carried a packet through its relay")
			}
			return nil
		},
	}
	flags.register(cmd, "the TURN key's ID, to mint the credentials to check (or --file)")
	f := cmd.Flags()
	f.StringVar(&file, "file", "", `read {"iceServers": [...]} from this file ("-" for stdin) instead of minting`)
	f.DurationVar(&cfg.Timeout, "timeout", turncheck.DefaultTimeout, "time limit for the whole check, above 0 and at most 5m")
	f.BoolVar(&cfg.IncludePort53, "include-port-53", false, "also probe URLs on port 53, which browsers block")
	f.StringVar(&caFile, "ca-file", "", "trust the PEM certificates in this file for turns: URLs (e.g. serve-fake --relay-cert-out), instead of the system's")
	return cmd
}

// checkInput returns the ICE servers to check and a function that revokes a credential minted for it.
func (a *app) checkInput(ctx context.Context, flags *iceFlags, file string) ([]turn.ICEServer, func(), error) {
	nothing := func() {}
	if err := flags.emptyKeyID(); err != nil {
		return nil, nothing, err
	}
	switch {
	case file != "" && flags.keyID != "":
		return nil, nothing, usagef("pass --key-id or --file, not both")
	case file == "" && flags.keyID == "":
		return nil, nothing, usagef(`nothing to check: pass --key-id ID to mint credentials, or --file FILE ("-" for stdin) with {"iceServers": [...]}`)
	case file != "":
		var r io.Reader = a.stdin
		name := "stdin"
		if file != "-" {
			fh, err := os.Open(file)
			if err != nil {
				return nil, nothing, usagef("--file: %v", err)
			}
			defer fh.Close()
			r, name = fh, file
		}
		data, err := io.ReadAll(io.LimitReader(r, maxICEInput+1))
		if err != nil {
			return nil, nothing, usagef("--file: reading %s: %v", name, err)
		}
		if len(data) > maxICEInput {
			return nil, nothing, usagef("--file: %s is larger than %d bytes", name, maxICEInput)
		}
		servers, err := turncheck.ParseICEServers(data)
		if err != nil {
			return nil, nothing, usagef("--file %s: %v", name, err)
		}
		return servers, nothing, nil
	}
	c, secret, err := flags.setup(a)
	if err != nil {
		return nil, nothing, err
	}
	ice, err := c.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: flags.keyID, KeySecret: secret, TTL: 10 * time.Minute})
	if err != nil {
		return nil, nothing, err
	}
	revoke := func() {
		for _, s := range ice.Servers {
			if s.Username == "" {
				continue
			}
			// The check is done; its credential need not outlive it. A failure only leaves it to expire.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := c.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: flags.keyID, KeySecret: secret, Username: s.Username})
			cancel()
			if err != nil {
				fmt.Fprintf(a.stderr, "cfturn: check: could not revoke the credential it minted (it expires in 10 minutes): %v\n", err)
			}
		}
	}
	return ice.Servers, revoke, nil
}

// printReport writes the report as a table, or as JSON with --json. Without --ca-file, a TLS
// failure on an unknown authority gets a hint to pass it.
func (a *app) printReport(r turncheck.Report, caFileGiven bool) error {
	if a.json {
		return writeJSON(a.stdout, r)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "URL\tTRANSPORT\tRESULT\tRTT\tADDRESS")
	var details []string
	for _, res := range r.Results {
		rtt, addr := "-", res.RelayedAddress
		if res.Status == turncheck.StatusOK {
			rtt = res.RTT.Round(10 * time.Microsecond).String()
		}
		if addr == "" {
			addr = res.MappedAddress
		}
		if addr == "" {
			addr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(res.URL), res.Transport, res.Status, rtt, printable(addr))
		if res.Detail != "" {
			detail := printable(res.Detail)
			if !caFileGiven && unknownAuthority(res.Detail) {
				detail += " (hint: to trust a private or self-signed certificate, such as serve-fake --relay-cert-out's, pass --ca-file FILE)"
			}
			details = append(details, fmt.Sprintf("  %s: %s", printable(res.URL), detail))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(details) > 0 {
		fmt.Fprintln(a.stdout, "\n"+strings.Join(details, "\n"))
	}
	_, err := fmt.Fprintf(a.stdout, "\nchecked in %v\n", r.Elapsed.Round(time.Millisecond))
	return err
}

// unknownAuthority reports whether a check's detail is a TLS certificate no trusted CA signed.
func unknownAuthority(detail string) bool {
	return strings.Contains(detail, "certificate signed by unknown authority") || strings.Contains(detail, "x509: certificate is not trusted")
}

// readCAFile returns a TLS configuration that trusts the PEM certificates of path.
func readCAFile(path string) (*tls.Config, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, usagef("--ca-file: %v", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxICEInput+1))
	switch {
	case err != nil:
		return nil, usagef("--ca-file %s: %v", path, err)
	case len(data) > maxICEInput:
		return nil, usagef("--ca-file %s is larger than %d bytes", path, maxICEInput)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, usagef("--ca-file %s holds no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
