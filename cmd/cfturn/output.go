package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// createdKey is the --json shape of a key just created: the key in the API's own field names
// (turn.Key's JSON tags), with its secret as "key".
type createdKey struct {
	turn.Key
	Secret string `json:"key"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printKeys writes keys as a table, or as JSON (one object, or an array when list is true).
func (a *app) printKeys(keys []turn.Key, list bool) error {
	if a.json {
		if !list && len(keys) == 1 {
			return writeJSON(a.stdout, keys[0])
		}
		if keys == nil {
			keys = []turn.Key{}
		}
		return writeJSON(a.stdout, keys)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED\tMODIFIED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Created.Format(time.RFC3339), k.Modified.Format(time.RFC3339))
	}
	return tw.Flush()
}
