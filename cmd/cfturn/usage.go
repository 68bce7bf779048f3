package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// usageFlags are the flags of cfturn usage.
type usageFlags struct {
	since, from, to string
	by              []string
	every           string
	identifier      string
	keyID, username string
	freeTier        string
	pricePerGB      float64
	csv             bool
}

func (a *app) usageCommand() *cobra.Command {
	var f usageFlags
	cmd := &cobra.Command{
		Use:   "usage [--since 24h | --from T --to T] [--by identifier|key|username|datacenter] [--every 1h] [--identifier ID]",
		Short: "Show TURN usage (egress and ingress) and its estimated cost, from Cloudflare's GraphQL Analytics API",
		Long: `Show TURN usage from Cloudflare's GraphQL Analytics API (dataset callsTurnUsageAdaptiveGroups).

The API token needs "Account Analytics Read" (CLOUDFLARE_API_TOKEN); the account comes from
--account-id or CLOUDFLARE_ACCOUNT_ID. Egress, what Cloudflare sends to clients, is what it bills:
the cost line applies --price-per-gb beyond --free-tier to the range's egress. It is an estimate:
the data is sampled, the free tier is per calendar month and shared with the SFU, and the invoice
is what counts. --identifier gives one customer's total with one query, as Cloudflare advises for
billing. Ranges longer than one query may cover take several; a progress line goes to stderr.`,
		Example: `  cfturn usage --since 24h --by identifier
  cfturn usage --from 2026-11-01 --to 2026-12-01 --every 24h
  cfturn usage --since 720h --identifier customer-42 --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.usage(cmd.Context(), &f, cmd.Flags().Changed) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.since, "since", "24h", "how far back from now, e.g. 1h, 24h, 720h (not with --from)")
	fl.StringVar(&f.from, "from", "", "start of the range: RFC 3339 (2026-11-01T00:00:00Z) or a UTC date (2026-11-01)")
	fl.StringVar(&f.to, "to", "", "end of the range, exclusive (default now)")
	fl.StringSliceVar(&f.by, "by", nil, "group by identifier, key, username or datacenter (repeat or comma-separate)")
	fl.StringVar(&f.every, "every", "", "group by a time bucket too: 1m, 5m, 15m, 1h or 24h")
	fl.StringVar(&f.identifier, "identifier", "", "one customer's billing total: usage of this customIdentifier, one sum")
	fl.StringVar(&f.keyID, "key-id", "", "only this TURN key's usage")
	fl.StringVar(&f.username, "username", "", "only this ICE credential's usage")
	fl.StringVar(&f.freeTier, "free-tier", "1000GB", "monthly egress Cloudflare does not bill, for the cost estimate")
	fl.Float64Var(&f.pricePerGB, "price-per-gb", turnusage.DefaultPricePerGB, "US dollars per GB of egress beyond the free tier, for the cost estimate")
	fl.BoolVar(&f.csv, "csv", false, "print CSV (bytes as integers) instead of a table")
	return cmd
}

// usageClient builds a turnusage.Client over the turn.Client the other commands use: the global
// flags and the environment, read by turn.NewClient.
func (a *app) usageClient() (*turnusage.Client, error) {
	tc, err := a.client()
	if err != nil {
		return nil, err
	}
	c, err := turnusage.NewClient(tc)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// parseTime reads an RFC 3339 time or a UTC date.
func parseTime(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--%s %q is neither an RFC 3339 time (2026-11-01T00:00:00Z) nor a date (2026-11-01)", flag, s)
}

func (f *usageFlags) query(now time.Time, changed func(string) bool) (turnusage.Query, error) {
	var q turnusage.Query
	var err error
	q.To = now
	if f.to != "" {
		if q.To, err = parseTime("to", f.to); err != nil {
			return q, err
		}
	}
	switch {
	case f.from != "":
		if changed("since") {
			return q, usagef("--since and --from both give the start of the range; pass one")
		}
		if q.From, err = parseTime("from", f.from); err != nil {
			return q, err
		}
	default:
		d, err := time.ParseDuration(f.since)
		if err != nil || d <= 0 {
			return q, usagef("--since %q is not a positive duration such as 1h, 24h or 720h", f.since)
		}
		// The dataset counts whole minutes and a range is rounded out to them: end on the minute
		// boundary after To and go back whole minutes, so that --since 1h covers 60 minutes, not 61
		// (and --since 90s two).
		q.To = ceilMinute(q.To)
		q.From = q.To.Add(-(d + time.Minute - 1).Truncate(time.Minute))
	}
	if !q.From.Before(q.To) {
		return q, usagef("the range is empty: --from (or --since) must come before --to")
	}
	for _, b := range f.by {
		d := turnusage.Dimension(strings.TrimSpace(b))
		if !slices.Contains(turnusage.Dimensions, d) {
			return q, usagef("--by %q: group by identifier, key, username or datacenter", b)
		}
		if !slices.Contains(q.By, d) {
			q.By = append(q.By, d)
		}
	}
	if f.every != "" {
		e := f.every
		if e == "1d" {
			e = "24h"
		}
		d, err := time.ParseDuration(e)
		if err != nil || !slices.Contains(turnusage.Buckets, d) {
			return q, usagef("--every %q: the dataset groups by 1m, 5m, 15m, 1h or 24h", f.every)
		}
		q.Every = d
	}
	if f.keyID != "" {
		q.KeyIDs = []string{f.keyID}
	}
	if f.username != "" {
		q.Usernames = []string{f.username}
	}
	if f.identifier != "" {
		if len(q.By) > 0 || q.Every != 0 {
			return q, usagef("--identifier gives one total; leave out --by and --every (or use --by identifier for every customer)")
		}
		q.CustomIdentifiers = []string{f.identifier}
	}
	return q, nil
}

// ceilMinute rounds t up to a whole minute, as turnusage rounds a range's end.
func ceilMinute(t time.Time) time.Time {
	if m := t.Truncate(time.Minute); !m.Equal(t) {
		return m.Add(time.Minute)
	}
	return t
}

// usageJSON is the --json shape of cfturn usage.
type usageJSON struct {
	From             time.Time        `json:"from"`
	To               time.Time        `json:"to"`
	Rows             []turnusage.Row  `json:"rows"`
	Totals           turnusage.Totals `json:"totals"`
	EstimatedCostUSD float64          `json:"estimatedCostUSD"`
	FreeTierBytes    uint64           `json:"freeTierBytes"`
	PricePerGB       float64          `json:"pricePerGB"`
	Queries          int              `json:"queries"`
}

func (a *app) usage(ctx context.Context, f *usageFlags, changed func(string) bool) error {
	free, err := turnusage.ParseBytes(f.freeTier)
	if err != nil {
		return usagef("--free-tier: %v", strings.TrimPrefix(err.Error(), "turnusage: "))
	}
	if f.pricePerGB < 0 {
		return usagef("--price-per-gb %v: must not be negative", f.pricePerGB)
	}
	if a.json && f.csv {
		return usagef("--json and --csv both choose the output; pass one")
	}
	c, err := a.usageClient()
	if err != nil {
		return err
	}
	q, err := f.query(time.Now(), changed)
	if err != nil {
		return err
	}
	// A terminal gets one line that counts the queries as they go; a file or pipe gets the count
	// once, at the end, instead of a run of carriage returns.
	live, progressed, queries := isTerminal(a.stderr), false, 0
	q.Progress = func(done, planned int) {
		queries = done
		if planned > 1 && live {
			fmt.Fprintf(a.stderr, "\rcfturn: usage: query %d of %d", done, planned)
			progressed = true
		}
	}
	var rep *turnusage.Report
	if f.identifier != "" {
		from, to := q.From.UTC().Truncate(time.Minute), ceilMinute(q.To.UTC())
		tot, terr := c.Total(ctx, q)
		err = terr
		rep = &turnusage.Report{From: from, To: to, Totals: tot, Rows: []turnusage.Row{{CustomIdentifier: f.identifier, EgressBytes: tot.EgressBytes, IngressBytes: tot.IngressBytes}}, Queries: queries}
		q.By = []turnusage.Dimension{turnusage.ByIdentifier}
	} else {
		rep, err = c.Usage(ctx, q)
	}
	switch {
	case progressed:
		fmt.Fprintln(a.stderr)
	case queries > 1 && err == nil:
		fmt.Fprintf(a.stderr, "cfturn: usage: %d queries\n", queries)
	}
	if err != nil {
		return a.usageError(err)
	}
	cost := turnusage.EstimateCost(rep.Totals.EgressBytes, free, f.pricePerGB)
	switch {
	case a.json:
		if rep.Rows == nil {
			rep.Rows = []turnusage.Row{}
		}
		return writeJSON(a.stdout, usageJSON{From: rep.From, To: rep.To, Rows: rep.Rows, Totals: rep.Totals, EstimatedCostUSD: cost,
			FreeTierBytes: free, PricePerGB: f.pricePerGB, Queries: rep.Queries})
	case f.csv:
		return writeUsageCSV(a.stdout, q, rep)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	cols := usageColumns(q)
	fmt.Fprintln(tw, strings.Join(append(cols, "EGRESS", "INGRESS"), "\t")+"\t")
	for _, r := range rep.Rows {
		fmt.Fprintln(tw, strings.Join(append(usageCells(q, r), turnusage.FormatBytes(r.EgressBytes), turnusage.FormatBytes(r.IngressBytes)), "\t")+"\t")
	}
	if len(rep.Rows) != 1 || len(cols) > 0 {
		total := make([]string, len(cols))
		if len(total) > 0 {
			total[0] = "TOTAL"
		}
		fmt.Fprintln(tw, strings.Join(append(total, turnusage.FormatBytes(rep.Totals.EgressBytes), turnusage.FormatBytes(rep.Totals.IngressBytes)), "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s to %s. Estimated cost: $%.2f (egress beyond %s at $%g/GB; an estimate: sampled data, a free tier per month shared with the SFU)\n",
		rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339), cost, turnusage.FormatBytes(free), f.pricePerGB)
	return err
}

// usageError rewords the library's advice for the terminal and adds its hint.
func (a *app) usageError(err error) error {
	var ue *turnusage.Error
	if errors.As(err, &ue) && ue.Hint() != "" {
		return &reworded{strings.TrimPrefix(err.Error(), "turnusage: ") + " (hint: " + ue.Hint() + ")", err}
	}
	msg := strings.TrimPrefix(err.Error(), "turnusage: ")
	msg = strings.ReplaceAll(msg, "pass turn.WithAccountID to the turn.Client or set CLOUDFLARE_ACCOUNT_ID", "pass --account-id or set CLOUDFLARE_ACCOUNT_ID")
	return &reworded{msg, err}
}

func usageColumns(q turnusage.Query) []string {
	var cols []string
	if q.Every != 0 {
		cols = append(cols, "TIME")
	}
	for _, d := range turnusage.Dimensions {
		if slices.Contains(q.By, d) {
			cols = append(cols, strings.ToUpper(string(d)))
		}
	}
	return cols
}

func usageCells(q turnusage.Query, r turnusage.Row) []string {
	var cells []string
	if q.Every != 0 {
		cells = append(cells, r.Time.Format(time.RFC3339))
	}
	for _, d := range turnusage.Dimensions {
		if !slices.Contains(q.By, d) {
			continue
		}
		var v string
		switch d {
		case turnusage.ByKey:
			v = r.KeyID
		case turnusage.ByIdentifier:
			v = r.CustomIdentifier
		case turnusage.ByUsername:
			v = r.Username
		case turnusage.ByDatacenter:
			v = strings.TrimSuffix(r.DatacenterCity+", "+r.DatacenterCountry, ", ")
		}
		if v == "" {
			v = "-"
		}
		cells = append(cells, printable(v))
	}
	return cells
}

func writeUsageCSV(w io.Writer, q turnusage.Query, rep *turnusage.Report) error {
	cw := csv.NewWriter(w)
	head := []string{}
	for _, c := range usageColumns(q) {
		head = append(head, strings.ToLower(c))
	}
	cw.Write(append(head, "egress_bytes", "ingress_bytes"))
	for _, r := range rep.Rows {
		cells := usageCells(q, r)
		for i, c := range cells {
			if c == "-" {
				cells[i] = ""
			}
			// A spreadsheet runs a cell that starts with one of these as a formula.
			if c != "" && strings.ContainsRune("=+-@", rune(c[0])) && c != "-" {
				cells[i] = "'" + c
			}
		}
		cw.Write(append(cells, strconv.FormatUint(r.EgressBytes, 10), strconv.FormatUint(r.IngressBytes, 10)))
	}
	cw.Flush()
	return cw.Error()
}

// demoUsage is cfturn demo's usage step: what the relay carried, read back through the GraphQL
// Analytics API as cfturn usage does.
func (a *app) demoUsage(ctx context.Context, srv *turntest.Server, p *demoPrinter) error {
	s := p.next("See what the relay carried", "POST /client/v4/graphql, dataset callsTurnUsageAdaptiveGroups; cfturn usage")
	c, err := turnusage.NewClient(srv.Client())
	if err != nil {
		return err
	}
	now := time.Now()
	rep, err := c.Usage(ctx, turnusage.Query{From: now.Add(-time.Hour), To: now, By: []turnusage.Dimension{turnusage.ByUsername}})
	if err != nil {
		return err
	}
	for _, r := range rep.Rows {
		s.lines = append(s.lines, fmt.Sprintf("credential %s: egress %s (billed), ingress %s", r.Username, turnusage.FormatBytes(r.EgressBytes), turnusage.FormatBytes(r.IngressBytes)))
	}
	cost := turnusage.EstimateCost(rep.Totals.EgressBytes, turnusage.DefaultFreeTierBytes, turnusage.DefaultPricePerGB)
	s.lines = append(s.lines, fmt.Sprintf("total egress %s: $%.2f at $%g/GB beyond the %s monthly free tier (an estimate)",
		turnusage.FormatBytes(rep.Totals.EgressBytes), cost, turnusage.DefaultPricePerGB, turnusage.FormatBytes(turnusage.DefaultFreeTierBytes)))
	s.Result["rows"], s.Result["totals"], s.Result["estimatedCostUSD"] = rep.Rows, rep.Totals, cost
	return p.print(s)
}
