package main

import (
	"bytes"
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

// writeJSON writes v as indented JSON, with the characters a terminal would act on escaped.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(terminalSafeJSON(buf.Bytes()))
	return err
}

// printKeys writes keys as a table, or as JSON (one object, or an array when list is true). Server
// text is escaped either way.
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(k.ID), printable(k.Name), k.Created.Format(time.RFC3339), k.Modified.Format(time.RFC3339))
	}
	return tw.Flush()
}
