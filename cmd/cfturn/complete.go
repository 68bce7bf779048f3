package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
)

// completeKeyIDArg completes the key ID that keys get, rename and delete take first.
func (a *app) completeKeyIDArg(cmd *cobra.Command, argv []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(argv) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeKeyIDs(cmd, argv, toComplete)
}

// completeKeyIDs offers the account's key IDs, described by their names, when an API token is set,
// and silently nothing otherwise: without a token, on any error, and after completionTimeout. A
// completion runs at every Tab, so it makes one attempt and never retries.
func (a *app) completeKeyIDs(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	const none = cobra.ShellCompDirectiveNoFileComp
	if a.getenv("CLOUDFLARE_API_TOKEN") == "" {
		return nil, none
	}
	c, err := a.client(turn.WithRetry(0))
	if err != nil {
		return nil, none
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, a.completionTimeout)
	defer cancel()
	keys, err := c.ListKeys(ctx, turn.ListKeysParams{})
	if err != nil {
		return nil, none
	}
	var ids []cobra.Completion
	for _, k := range keys {
		if !strings.HasPrefix(k.ID, toComplete) {
			continue
		}
		// The shell reads one completion a line, with its description after a tab: a name with
		// a line break or a tab would forge completions, and printable escapes both.
		id := printable(k.ID)
		if k.Name != "" {
			id = cobra.CompletionWithDesc(id, printable(k.Name))
		}
		ids = append(ids, id)
	}
	return ids, none
}
