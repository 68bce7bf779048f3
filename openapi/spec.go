// Package openapi embeds openapi/calls.yaml, the hand-maintained description of the Cloudflare Realtime
// TURN APIs, and loads it with kin-openapi.
//
// It is the only package that links kin-openapi and a YAML parser, so that programs importing just
// pkg/turn stay small. Tests, the contract checker and tools use it; the client does not.
package openapi

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
)

// YAML is the spec exactly as committed.
//
//go:embed calls.yaml
var YAML []byte

// Load parses and validates the embedded spec. Each call returns a fresh document, so callers may
// change it without affecting others.
func Load(ctx context.Context) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(YAML)
	if err != nil {
		return nil, fmt.Errorf("openapi: parse calls.yaml: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapi: calls.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}
