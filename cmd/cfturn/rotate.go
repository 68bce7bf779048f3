package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
)

// rotatedSuffix matches the suffix keys rotate adds to a key's name, so that rotating a rotated
// key replaces the date instead of adding another.
var rotatedSuffix = regexp.MustCompile(` \(rotated \d{4}-\d{2}-\d{2}\)$`)

// rotation is what keys rotate did, for --json.
type rotation struct {
	OldKey         turn.Key  `json:"oldKey"`
	NewKey         turn.Key  `json:"newKey"`
	SecretFile     string    `json:"secretFile"`
	DeleteOldAfter time.Time `json:"deleteOldAfter"`
	Steps          []string  `json:"steps"`
}

func (a *app) keysRotate() *cobra.Command {
	var out, name string
	var maxTTL time.Duration
	cmd := &cobra.Command{
		Use:   "rotate OLD-ID --out FILE [--max-ttl 48h] [--name NAME]",
		Short: "Create the key that replaces OLD-ID and print the steps to switch to it",
		Long: `Create a new TURN key to replace OLD-ID, named after it ("<old name> (rotated YYYY-MM-DD)",
or --name). Its secret goes to --out FILE, created new with mode 0600 (an existing file is never
overwritten), and is never printed. Then print the remaining steps: switch the minting servers to
the new key, check it, and delete OLD-ID once every credential minted from it has expired, that is
after now + --max-ttl, the longest credential TTL you use (default 48h, Cloudflare's maximum; use
your serve-ice --ttl). cfturn deletes nothing itself: OLD-ID stays until you delete it.`,
		Example: `  cfturn keys rotate "$OLD_KEY_ID" --out turn-key-2.secret
  cfturn keys rotate "$OLD_KEY_ID" --out turn-key-2.secret --max-ttl 24h --json | jq -r .deleteOldAfter`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeKeyIDArg,
		RunE: func(cmd *cobra.Command, argv []string) error {
			oldID := argv[0]
			switch {
			case out == "":
				return usagef("keys rotate: --out FILE is required: the new key's secret goes there, never to the screen")
			case maxTTL < time.Second || maxTTL > turn.MaxICETTL:
				return usagef("--max-ttl %v: give the longest credential TTL in use, 1s to %v", maxTTL, turn.MaxICETTL)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			old, err := c.GetKey(ctx, turn.KeyParams{KeyID: oldID})
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			if name == "" {
				name = rotatedName(old, now)
			}
			// Open the file first: a key whose secret cannot be stored must not be created.
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return usagef("--out %s: file exists; cfturn never overwrites a secret file, choose another name", printable(out))
			}
			if err != nil {
				return usagef("--out: %w; nothing was created", err)
			}
			created, err := c.CreateKey(ctx, turn.CreateKeyParams{Name: name})
			if err != nil {
				f.Close()
				os.Remove(out)
				return err
			}
			if err := writeSecret(f, created.Secret); err != nil {
				// The secret is not printed, even now: the new key is useless without it, and
				// making another costs nothing.
				return fmt.Errorf("--out %s: %w; the new key %s has no stored secret: delete it (cfturn keys delete %s) and rotate again",
					printable(out), err, created.ID, created.ID)
			}
			deleteAfter := now.Add(maxTTL).Truncate(time.Second)
			r := rotation{
				OldKey: old, NewKey: created.Key, SecretFile: out, DeleteOldAfter: deleteAfter,
				Steps: rotationSteps(old.ID, created.ID, out, deleteAfter, maxTTL),
			}
			if a.json {
				return writeJSON(a.stdout, r)
			}
			return a.printRotation(a.stdout, r)
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "write the new key's secret to this new file (mode 0600); required")
	f.DurationVar(&maxTTL, "max-ttl", turn.MaxICETTL, "the longest TTL of credentials minted from OLD-ID (serve-ice --ttl)")
	f.StringVar(&name, "name", "", `the new key's name (default "<old name> (rotated YYYY-MM-DD)")`)
	return cmd
}

// rotatedName names the key that replaces old: its name (or, without one, its ID) with the date.
func rotatedName(old turn.Key, now time.Time) string {
	base := rotatedSuffix.ReplaceAllString(old.Name, "")
	if base == "" {
		base = old.ID
	}
	return base + " (rotated " + now.Format(time.DateOnly) + ")"
}

// writeSecret writes the secret and flushes it to disk before the file is closed: it exists
// nowhere else.
func writeSecret(f *os.File, secret turn.Secret) error {
	_, err := io.WriteString(f, secret.Reveal()+"\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func rotationSteps(oldID, newID, secretFile string, deleteAfter time.Time, maxTTL time.Duration) []string {
	return []string{
		fmt.Sprintf("Switch every server that mints credentials to the new key: --key-id %s with the secret in %s. "+
			"cfturn serve-ice switches without a restart on SIGHUP, or when its --key-id-file and --key-secret-file change "+
			"(as a Kubernetes secret update does).", newID, printable(secretFile)),
		fmt.Sprintf("Check that the new key mints: cfturn ice-servers --key-id %s --key-secret-file %s --ttl 10s", newID, printable(secretFile)),
		fmt.Sprintf("After %s (now + %v, the longest credential TTL in use; later if the switch took longer), "+
			"when every credential minted from the old key has expired, delete it: cfturn keys delete %s",
			deleteAfter.Format(time.RFC3339), maxTTL, oldID),
	}
}

func (a *app) printRotation(w io.Writer, r rotation) error {
	fmt.Fprintf(w, "Created TURN key %s %q to replace %s %q.\n", r.NewKey.ID, printable(r.NewKey.Name), r.OldKey.ID, printable(r.OldKey.Name))
	fmt.Fprintf(w, "Its secret is in %s (mode 0600); it is not shown.\n\nRemaining steps (cfturn deletes nothing):\n", printable(r.SecretFile))
	for i, s := range r.Steps {
		if _, err := fmt.Fprintf(w, "  %d. %s\n", i+1, s); err != nil {
			return err
		}
	}
	return nil
}
