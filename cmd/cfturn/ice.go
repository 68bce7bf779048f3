package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
)

// iceFlags are the flags every ICE command takes. The key secret is never a flag value, so it does
// not show in shell history or the process list.
type iceFlags struct {
	keyID      string
	secretFile string
	cmd        *cobra.Command
}

// register adds the flags to cmd; keyIDUsage describes --key-id there.
func (f *iceFlags) register(cmd *cobra.Command, keyIDUsage string) {
	f.cmd = cmd
	cmd.Flags().StringVar(&f.keyID, "key-id", "", keyIDUsage)
	cmd.Flags().StringVar(&f.secretFile, "key-secret-file", "", "file holding the TURN key's secret (default $CFTURN_KEY_SECRET)")
}

// emptyKeyID says so when --key-id was given an empty value, as an unset shell variable gives.
func (f *iceFlags) emptyKeyID() error {
	if f.keyID == "" && f.cmd != nil && f.cmd.Flags().Changed("key-id") {
		return usagef(`--key-id is empty: pass the TURN key's ID (is the shell variable unset? e.g. KEY_ID=$(cat turn-key.id))`)
	}
	return nil
}

// setup returns the client and the key secret an ICE command needs.
func (f *iceFlags) setup(a *app) (*turn.Client, turn.Secret, error) {
	secret, err := f.secret(a)
	if err != nil {
		return nil, turn.Secret{}, err
	}
	c, err := a.client()
	return c, secret, err
}

// secret reads the key secret from --key-secret-file or CFTURN_KEY_SECRET.
func (f *iceFlags) secret(a *app) (turn.Secret, error) {
	if err := f.emptyKeyID(); err != nil {
		return turn.Secret{}, err
	}
	if f.keyID == "" {
		return turn.Secret{}, usagef("--key-id is required")
	}
	if f.secretFile != "" {
		s, err := readSecretFile(f.secretFile, a.stderr)
		if err != nil {
			return turn.Secret{}, err
		}
		return turn.NewSecret(s), nil
	}
	if s := strings.TrimSpace(a.getenv("CFTURN_KEY_SECRET")); s != "" {
		return turn.NewSecret(s), nil
	}
	return turn.Secret{}, usagef("no key secret: set CFTURN_KEY_SECRET or pass --key-secret-file (the secret from keys create)")
}

// maxSecretFileBytes bounds what --key-secret-file reads: a TURN key's secret is 64 characters, and
// a wrong path such as /dev/zero must not fill memory.
const maxSecretFileBytes = 4 << 10

// readSecretFile reads the key secret from path, at most maxSecretFileBytes, and warns on w when
// others than its owner may read it. Surrounding white space, such as the newline keys create
// --out writes, is removed.
func readSecretFile(path string, w io.Writer) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", usagef("--key-secret-file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(w, "cfturn: warning: --key-secret-file %s can be read by group or others (mode %04o); run chmod 600 on it\n",
			printable(path), st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", usagef("--key-secret-file: %w", err)
	}
	if len(b) > maxSecretFileBytes {
		return "", usagef("--key-secret-file %s holds more than %d bytes; a TURN key secret is 64 characters: is it the right file?", path, maxSecretFileBytes)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", usagef("--key-secret-file %s is empty", path)
	}
	return s, nil
}

func (a *app) iceCommand() *cobra.Command {
	var flags iceFlags
	var ttl time.Duration
	var customIdentifier string
	cmd := &cobra.Command{
		Use:   "ice-servers --key-id ID [--ttl 24h] [--custom-identifier TAG]",
		Short: "Mint short-lived ICE credentials and print the iceServers JSON",
		Long: `Mint short-lived ICE credentials from a TURN key and print {"iceServers": [...]}, the
configuration a browser passes to new RTCPeerConnection. The key's secret comes from
CFTURN_KEY_SECRET or --key-secret-file. --custom-identifier tags the credential for Cloudflare's
per-user usage analytics and abuse monitoring (it is not a secret: no email addresses or tokens).`,
		Example: `  cfturn ice-servers --key-id "$KEY_ID" --key-secret-file turn-key.secret --ttl 1h
  CFTURN_KEY_SECRET="$(cat turn-key.secret)" cfturn ice-servers --key-id "$KEY_ID" | cfturn check --file -`,
		Args: a.subcommands,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, secret, err := flags.setup(a)
			if err != nil {
				return err
			}
			ice, err := c.GenerateICEServers(cmd.Context(), turn.GenerateICEServersParams{
				KeyID: flags.keyID, KeySecret: secret, TTL: ttl, CustomIdentifier: customIdentifier})
			if err != nil {
				return err
			}
			return writeJSON(a.stdout, ice)
		},
	}
	flags.register(cmd, "the TURN key's ID (required)")
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the credentials live, in whole seconds (e.g. 10m, 24h; at most 48h)")
	cmd.Flags().StringVar(&customIdentifier, "custom-identifier", "", "tag for Cloudflare's per-user usage analytics, e.g. user4523958")
	cmd.AddCommand(a.iceRevoke())
	return cmd
}

func (a *app) iceRevoke() *cobra.Command {
	var flags iceFlags
	cmd := &cobra.Command{
		Use:     "revoke USERNAME --key-id ID",
		Short:   "Revoke one ICE credential before its ttl runs out",
		Example: `  cfturn ice-servers revoke 2f3b...username --key-id "$KEY_ID" --key-secret-file turn-key.secret`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, secret, err := flags.setup(a)
			if err != nil {
				return err
			}
			if err := c.RevokeICECredential(cmd.Context(), turn.RevokeICECredentialParams{KeyID: flags.keyID, KeySecret: secret, Username: argv[0]}); err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, map[string]bool{"revoked": true})
			}
			_, err = fmt.Fprintln(a.stdout, "revoked")
			return err
		},
	}
	flags.register(cmd, "the TURN key's ID (required)")
	return cmd
}
