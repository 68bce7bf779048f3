package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
)

// app is what every command shares: the streams, the environment and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	json       bool
	accountID  string
	baseURL    string
	iceBaseURL string

	args              []string               // the command line, for flagError
	interrupts        <-chan os.Signal       // a Ctrl-C after the first: see serveOn
	changed           func(flag string) bool // whether a global flag was given
	completionTimeout time.Duration          // bounds the API call behind a shell completion
}

// run executes cfturn with args and returns the exit code. Results go to stdout, diagnostics to
// stderr, and an error is one line on stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, completionTimeout: 2 * time.Second}
	return a.run(ctx, args)
}

func (a *app) run(ctx context.Context, args []string) int {
	a.args = args
	root := a.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(a.stderr, "cfturn: %s\n", a.errorLine(err))
	}
	return exitCode(err)
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "cfturn",
		Short: "Manage Cloudflare Realtime TURN keys and mint ICE credentials",
		Long: `cfturn manages Cloudflare Realtime TURN keys and mints short-lived ICE credentials.

Key commands read the API token from CLOUDFLARE_API_TOKEN (permission "Calls Write"; "Calls Read"
is enough for keys list and keys get) and the account from --account-id or CLOUDFLARE_ACCOUNT_ID.
ICE commands read the TURN key's secret from CFTURN_KEY_SECRET or --key-secret-file. Try it offline
with "cfturn demo" or "cfturn serve-fake".

` + exitStatusHelp,
		Version: turn.Version,
		Example: `  cfturn demo                                      # a key's whole life against the built-in fake
  cfturn keys create --name prod --out turn-key.secret
  cfturn ice-servers --key-id ID --key-secret-file turn-key.secret
  cfturn serve-fake                                 # the fake on 127.0.0.1:8787 until Ctrl-C`,
		Args:          a.subcommands,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Before cobra's completion command is added: it keeps the output stream it sees then.
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(a.flagError)
	pf := root.PersistentFlags()
	pf.BoolVar(&a.json, "json", false, "print JSON for scripts instead of tables")
	pf.StringVar(&a.accountID, "account-id", "", "Cloudflare account ID (default $CLOUDFLARE_ACCOUNT_ID)")
	pf.StringVar(&a.baseURL, "base-url", "", "key API root (default "+turn.DefaultAPIBaseURL+"); one not ending in /client/v4 needs --ice-base-url too")
	pf.StringVar(&a.iceBaseURL, "ice-base-url", "", "ICE API root (default "+turn.DefaultICEBaseURL+"; with --base-url ending in /client/v4, the same server's /v1)")
	a.changed = pf.Changed
	root.AddCommand(a.keysCommand(), a.iceCommand(), a.checkCommand(), a.serveICECommand(), a.serveFakeCommand(), a.demoCommand(), a.versionCommand())
	root.AddCommand(a.usageCommand())

	// Add cobra's own commands now, so that they follow the rules of the others: an unknown
	// argument is an unknown command, with suggestions and exit status 2.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, cmd := range root.Commands() {
		switch cmd.Name() {
		case "help":
			cmd.Example = "  cfturn help keys create"
			cmd.Args = cobra.ArbitraryArgs
			cmd.RunE = func(_ *cobra.Command, argv []string) error {
				target, rest, err := root.Find(argv)
				if err != nil {
					return usageError{err}
				}
				if len(rest) > 0 {
					return a.unknownCommand(target, rest[0])
				}
				return target.Help()
			}
		case "completion":
			cmd.Example = "  source <(cfturn completion bash)\n  cfturn completion zsh > \"${fpath[1]}/_cfturn\""
			for _, shell := range cmd.Commands() {
				shell.Example = completionExamples[shell.Name()]
			}
			cmd.Args = a.subcommands
			cmd.RunE = func(*cobra.Command, []string) error {
				return usagef("completion needs a shell: bash, zsh, fish or powershell (see cfturn completion --help)")
			}
		}
	}
	walk(root, func(cmd *cobra.Command) {
		if cmd.Flags().Lookup("key-id") != nil {
			cmd.RegisterFlagCompletionFunc("key-id", a.completeKeyIDs)
		}
	})
	return root
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print cfturn's version (as cfturn --version does)",
		Example: "  cfturn version",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.json {
				return writeJSON(a.stdout, map[string]string{"version": turn.Version})
			}
			_, err := fmt.Fprintf(a.stdout, "cfturn version %s\n", turn.Version)
			return err
		},
	}
}

// flagError explains an unknown or malformed flag. A flag cobra does not know may stand after a
// mistyped command ("ice-server --key-id x": the command is the mistake), or be a secret that
// cfturn takes only from a file or the environment.
func (a *app) flagError(cmd *cobra.Command, err error) error {
	if !cmd.HasParent() {
		if name := firstCommandWord(cmd, a.args); name != "" {
			if found, _, ferr := cmd.Find([]string{name}); ferr != nil || found == cmd {
				return a.unknownCommand(cmd, name)
			}
		}
	}
	if strings.Contains(err.Error(), "unknown flag: --key-secret") && !strings.Contains(err.Error(), "--key-secret-file") {
		return usagef("%v: cfturn takes the TURN key's secret only from CFTURN_KEY_SECRET or --key-secret-file FILE, never as a flag value, so that it stays out of shell history and the process list (see %s --help)", err, cmd.CommandPath())
	}
	return usagef("%v (see %s --help)", err, cmd.CommandPath())
}

// firstCommandWord returns the first argument that is neither a flag nor a global flag's value:
// the command the user meant.
func firstCommandWord(root *cobra.Command, argv []string) string {
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		switch {
		case arg == "--":
			return ""
		case strings.HasPrefix(arg, "-"):
			name := strings.TrimLeft(arg, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if f := root.PersistentFlags().Lookup(name); f != nil && f.Value.Type() != "bool" {
				i++ // its value
			}
		default:
			return arg
		}
	}
	return ""
}

var completionExamples = map[string]string{
	"bash":       "  source <(cfturn completion bash)",
	"zsh":        "  cfturn completion zsh > \"${fpath[1]}/_cfturn\"",
	"fish":       "  cfturn completion fish > ~/.config/fish/completions/cfturn.fish",
	"powershell": "  cfturn completion powershell | Out-String | Invoke-Expression",
}

func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, sub := range cmd.Commands() {
		walk(sub, fn)
	}
}

// client builds a turn.Client from the flags and the environment given to run, with extra options
// last.
func (a *app) client(extra ...turn.Option) (*turn.Client, error) {
	if err := a.checkGlobalFlags(); err != nil {
		return nil, err
	}
	opts := []turn.Option{turn.WithGetenv(a.getenv), turn.WithUserAgent("cfturn-cli/" + turn.Version)}
	if a.accountID != "" {
		opts = append(opts, turn.WithAccountID(a.accountID))
	}
	// The library derives the ICE root from --base-url, or refuses a --base-url it cannot derive
	// it from (see turn.WithBaseURL): one rule for Go callers and the CLI.
	if a.baseURL != "" {
		opts = append(opts, turn.WithBaseURL(a.baseURL))
	}
	if a.iceBaseURL != "" {
		opts = append(opts, turn.WithICEBaseURL(a.iceBaseURL))
	}
	c, err := turn.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// checkGlobalFlags refuses what the library would take silently or explain in its own terms: an
// empty flag value (which would mean the default) and a base URL that is no URL at all.
func (a *app) checkGlobalFlags() error {
	for _, f := range []struct{ name, value, example string }{
		{"account-id", a.accountID, ""},
		{"base-url", a.baseURL, turn.DefaultAPIBaseURL + " (or http://127.0.0.1:8787/client/v4 for cfturn serve-fake)"},
		{"ice-base-url", a.iceBaseURL, turn.DefaultICEBaseURL},
	} {
		if !a.changed(f.name) {
			continue
		}
		if strings.TrimSpace(f.value) == "" {
			return usagef("--%s is empty; give a value or leave the flag out for the default", f.name)
		}
		if f.example == "" {
			continue
		}
		if u, err := url.Parse(f.value); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			shown := f.value
			if err == nil && u.User != nil {
				shown = u.Redacted()
			}
			return usagef("--%s %q is not an absolute http(s) URL; pass the API root, e.g. %s", f.name, shown, f.example)
		}
	}
	return nil
}

// args wraps a cobra argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usagef("%s: %v (see %s --help)", subcommandPath(cmd), err, cmd.CommandPath())
		}
		return nil
	}
}

// subcommands is the argument check of a command that groups others: an argument is an unknown
// subcommand.
func (a *app) subcommands(cmd *cobra.Command, argv []string) error {
	if len(argv) > 0 {
		return a.unknownCommand(cmd, argv[0])
	}
	return nil
}

// unknownCommand reports name as unknown below cmd, with cobra's suggestions ("did you mean keys?").
func (a *app) unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q", name)
	if cmd.HasParent() {
		msg += fmt.Sprintf(" for %q", subcommandPath(cmd))
	}
	// One typo in a short name, two in a longer one: "keyz" suggests keys, "tcsh" suggests no shell.
	cmd.SuggestionsMinimumDistance = 1
	if len(name) > 4 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usagef("%s (see %s --help)", msg, cmd.CommandPath())
}

// subcommandPath is the command path without the program name, which every error line starts with.
func subcommandPath(cmd *cobra.Command) string {
	p := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name())
	if p == "" {
		return cmd.Root().Name()
	}
	return strings.TrimSpace(p)
}
