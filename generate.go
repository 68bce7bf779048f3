// Package cfturn is the root of the cfturn module: a Go client, CLI and offline fake for Cloudflare
// Realtime TURN. The library lives in pkg/turn, the CLI in cmd/cfturn.
//
// This file holds the code generation step. gen/ is produced from openapi/calls.yaml by the oapi-codegen
// version pinned with a tool directive in go.mod; run `go generate ./...` (or `make generate`) after
// editing the spec, and never edit gen/ by hand.
package cfturn

//go:generate go tool oapi-codegen -config gen/calls/config.yaml openapi/calls.yaml
//go:generate go tool oapi-codegen -config gen/callsclient/config.yaml openapi/calls.yaml
//go:generate go tool oapi-codegen -config gen/callsserver/config.yaml openapi/calls.yaml

// gen/analytics is produced from graphql/analytics.graphql and graphql/operations.graphql by the
// pinned genqlient.
//go:generate go tool genqlient gen/analytics/genqlient.yaml
