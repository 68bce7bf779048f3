package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cfturn/cfturn/pkg/turn"
)

func (a *app) keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list, get, rename and delete TURN keys",
		Example: `  cfturn keys create --name prod --out turn-key.secret
  cfturn keys list`,
		Args: a.subcommands,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("keys needs a subcommand (see cfturn keys --help)")
		},
	}
	cmd.AddCommand(a.keysCreate(), a.keysList(), a.keysGet(), a.keysRename(), a.keysDelete(), a.keysRotate())
	return cmd
}

func (a *app) keysCreate() *cobra.Command {
	var name, out string
	cmd := &cobra.Command{
		Use:   "create [--name NAME] [--out FILE]",
		Short: "Create a TURN key; its secret is shown only once",
		Long: `Create a TURN key. Cloudflare returns the key's secret only this once.
Without --out the secret is printed; with --out FILE it is written to FILE, created new with mode
0600 (an existing file is never overwritten), and not printed.`,
		Example: `  cfturn keys create --name prod --out turn-key.secret
  KEY_ID=$(cfturn keys create --name prod --out turn-key.secret --json | jq -r .uid)`,
		Args: func(cmd *cobra.Command, argv []string) error {
			if len(argv) > 0 {
				return usagef("keys create takes no arguments: to name the key %s, pass --name %s (see cfturn keys create --help)", printable(argv[0]), shellQuote(argv[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			// Open the file first: a key whose secret cannot be stored must not be created.
			var f *os.File
			if out != "" {
				f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if errors.Is(err, fs.ErrExist) {
					return usagef("--out %s: file exists; cfturn never overwrites a secret file, choose another name (or, if it holds the secret of a key that is gone, such as one of a serve-fake that has restarted, remove it first)", out)
				}
				if err != nil {
					return usagef("--out: %w; nothing was created", err)
				}
			}
			key, err := c.CreateKey(cmd.Context(), turn.CreateKeyParams{Name: name})
			if err != nil {
				if f != nil {
					f.Close()
					os.Remove(out)
				}
				return err
			}
			if f != nil {
				return a.saveSecret(f, out, key)
			}
			fmt.Fprintln(a.stderr, "cfturn: this is the only time Cloudflare shows the key's secret: store it now")
			if a.json {
				return writeJSON(a.stdout, createdKey{key.Key, key.Secret.Reveal()})
			}
			if err := a.printKeys([]turn.Key{key.Key}, false); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "SECRET  %s\n", key.Secret.Reveal())
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "short description of the key, not shown to end users")
	cmd.Flags().StringVar(&out, "out", "", "write the secret to this new file (mode 0600) instead of printing it")
	return cmd
}

// saveSecret writes the new key's secret to f. If that fails, the secret is printed instead, since
// it can never be fetched again.
func (a *app) saveSecret(f *os.File, path string, key turn.KeyWithSecret) error {
	_, err := io.WriteString(f, key.Secret.Reveal()+"\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "cfturn: writing %s failed (%v); the secret, shown only now, is:\n%s\n", path, err, key.Secret.Reveal())
		return fmt.Errorf("--out %s: %w", path, err)
	}
	fmt.Fprintf(a.stderr, "cfturn: secret written to %s (mode 0600)\n", path)
	return a.printKeys([]turn.Key{key.Key}, false)
}

func (a *app) keysList() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the account's TURN keys",
		Example: "  cfturn keys list\n  cfturn keys list --json | jq -r '.[].uid'",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			keys, err := c.ListKeys(cmd.Context(), turn.ListKeysParams{})
			if err != nil {
				return err
			}
			if len(keys) == 0 && !a.json {
				_, err := fmt.Fprintf(a.stdout, "no TURN keys in account %s\n", c.AccountID())
				return err
			}
			return a.printKeys(keys, true)
		},
	}
}

func (a *app) keysGet() *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show one TURN key",
		Example:           "  cfturn keys get 2a95132c15732412d22c1476fa83f27a",
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeKeyIDArg,
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			key, err := c.GetKey(cmd.Context(), turn.KeyParams{KeyID: argv[0]})
			if err != nil {
				return err
			}
			return a.printKeys([]turn.Key{key}, false)
		},
	}
}

func (a *app) keysRename() *cobra.Command {
	return &cobra.Command{
		Use:               "rename ID NAME",
		Short:             "Rename a TURN key",
		Example:           "  cfturn keys rename 2a95132c15732412d22c1476fa83f27a staging",
		Args:              args(cobra.ExactArgs(2)),
		ValidArgsFunction: a.completeKeyIDArg,
		RunE: func(cmd *cobra.Command, argv []string) error {
			if argv[1] == "" {
				// The API would clear the name; on the command line an empty NAME is more likely a
				// mistake, such as an unset shell variable.
				return usagef("name is empty: pass the key's new name")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			key, err := c.UpdateKey(cmd.Context(), turn.UpdateKeyParams{KeyID: argv[0], Name: argv[1]})
			if err != nil {
				return err
			}
			return a.printKeys([]turn.Key{key}, false)
		},
	}
}

func (a *app) keysDelete() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete ID [--yes]",
		Short: "Delete a TURN key; credentials minted from it stop working",
		Long: `Delete a TURN key. On a terminal cfturn asks first; elsewhere, or to skip the question,
pass --yes.`,
		Example:           "  cfturn keys delete 2a95132c15732412d22c1476fa83f27a\n  cfturn keys delete --yes 2a95132c15732412d22c1476fa83f27a",
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeKeyIDArg,
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if !yes {
				if !isTerminal(a.stdin) {
					return usagef("keys delete: standard input is not a terminal, so cfturn cannot ask: pass --yes to delete %s", argv[0])
				}
				ok, err := confirm(a.stdin, a.stderr, fmt.Sprintf("Delete TURN key %s? Credentials minted from it stop working. [y/N] ", argv[0]))
				if err != nil {
					return usagef("keys delete: no answer (%v) and nothing deleted: pass --yes to delete %s without asking", err, argv[0])
				}
				if !ok {
					return usagef("keys delete: not confirmed; nothing deleted")
				}
			}
			key, err := c.DeleteKey(cmd.Context(), turn.KeyParams{KeyID: argv[0]})
			if err != nil {
				return err
			}
			if a.json {
				return a.printKeys([]turn.Key{key}, false)
			}
			_, err = fmt.Fprintf(a.stdout, "deleted key %s (name %q); credentials minted from it stop working\n", printable(key.ID), key.Name)
			return err
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}

// shellQuote quotes s for a shell command line when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_.,/:@", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(printable(s), "'", `'\''`) + "'"
}

// isTerminal reports whether r (a reader or writer) is a terminal a person can answer on or
// read. /dev/null is a character device but no terminal; a closed file is neither.
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm asks a yes/no question and reads the answer from in.
func confirm(in io.Reader, out io.Writer, question string) (bool, error) {
	fmt.Fprint(out, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
