package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// keyJSON is the --json shape of a key: the API's own field names.
type keyJSON struct {
	ID       string    `json:"uid"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Modified time.Time `json:"modified"`
	Secret   string    `json:"key,omitempty"`
}

func toJSON(k turn.Key) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, Created: k.Created, Modified: k.Modified}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printKeys writes keys as a table, or as JSON (one object, or an array when list is true).
func (a *app) printKeys(keys []turn.Key, list bool) error {
	if a.json {
		out := make([]keyJSON, len(keys))
		for i, k := range keys {
			out[i] = toJSON(k)
		}
		if !list && len(out) == 1 {
			return writeJSON(a.stdout, out[0])
		}
		return writeJSON(a.stdout, out)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED\tMODIFIED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Created.Format(time.RFC3339), k.Modified.Format(time.RFC3339))
	}
	return tw.Flush()
}
