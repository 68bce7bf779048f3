package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Exit codes.
const (
	exitOK    = 0
	exitAPI   = 1 // the API or the system failed
	exitUsage = 2 // the command line or the configuration is wrong
)

// usageError marks an error in how cfturn was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// app is what every command shares: the streams, the environment and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	json       bool
	accountID  string
	baseURL    string
	iceBaseURL string
}

// run executes cfturn with args and returns the exit code. Results go to stdout, diagnostics to
// stderr, and an error is one line on stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "cfturn: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	var usage usageError
	if errors.As(err, &usage) || errors.Is(err, turn.ErrInvalidArgument) || errors.Is(err, turn.ErrNoAPIToken) {
		return exitUsage
	}
	return exitAPI
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "cfturn",
		Short: "Manage Cloudflare Realtime TURN keys and mint ICE credentials",
		Long: `cfturn manages Cloudflare Realtime TURN keys and mints short-lived ICE credentials.

Key commands read the API token from CLOUDFLARE_API_TOKEN (permission "Calls Write") and the account
from --account-id or CLOUDFLARE_ACCOUNT_ID. ICE commands read the TURN key's secret from
CFTURN_KEY_SECRET or --key-secret-file. Try it offline with "cfturn demo" or "cfturn serve-fake".`,
		Version:       turn.Version,
		Args:          args(cobra.NoArgs),
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef("%v (see %s --help)", err, cmd.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.BoolVar(&a.json, "json", false, "print JSON for scripts instead of tables")
	pf.StringVar(&a.accountID, "account-id", "", "Cloudflare account ID (default $CLOUDFLARE_ACCOUNT_ID)")
	pf.StringVar(&a.baseURL, "base-url", "", "key API root (default "+turn.DefaultAPIBaseURL+")")
	pf.StringVar(&a.iceBaseURL, "ice-base-url", "", "ICE API root (default "+turn.DefaultICEBaseURL+"; with only --base-url set, the same server's /v1)")
	root.AddCommand(a.keysCommand(), a.iceCommand(), a.checkCommand(), a.serveICECommand(), a.serveFakeCommand(), a.demoCommand())
	return root
}

// client builds a turn.Client from the flags and the environment given to run.
func (a *app) client() (*turn.Client, error) {
	opts := []turn.Option{turn.WithGetenv(a.getenv), turn.WithUserAgent("cfturn-cli/" + turn.Version)}
	if a.accountID != "" {
		opts = append(opts, turn.WithAccountID(a.accountID))
	}
	ice := a.iceBaseURL
	if a.baseURL != "" {
		opts = append(opts, turn.WithBaseURL(a.baseURL))
		if ice == "" {
			// A fake or proxy serves both APIs: /client/v4 for keys and /v1 for ICE.
			if root, ok := strings.CutSuffix(strings.TrimSuffix(a.baseURL, "/"), "/client/v4"); ok {
				ice = root + "/v1"
			}
		}
	}
	if ice != "" {
		opts = append(opts, turn.WithICEBaseURL(ice))
	}
	c, err := turn.NewClient(opts...)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// args wraps a cobra argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usagef("%s: %v (see %s --help)", cmd.CommandPath(), err, cmd.CommandPath())
		}
		return nil
	}
}
