// Package bench compares pkg/turn with a hand-written net/http client (the floor) and the official
// Cloudflare Go SDK on the same work. See BENCHMARKS.md and `make bench`.
package bench

import (
	"bytes"
	"io"
	"net/http"
	"strings"
)

// The account, key and token every client uses.
const (
	Account = "023e105f4ecef8ad9ca31a8372d0c353"
	KeyID   = "2a95132c15732412d22c1476fa83f27a"
	Token   = "bench-token-0123456789abcdefghijklmnopqrs"
)

const keyJSON = `{"uid":"2a95132c15732412d22c1476fa83f27a","name":"bench key","created":"2024-05-01T12:00:00Z","modified":"2024-05-01T12:00:00Z"}`

// Canned answers, one per operation, as Cloudflare sends them.
var (
	CreateBody = []byte(`{"success":true,"errors":[],"messages":[],"result":{"uid":"2a95132c15732412d22c1476fa83f27a","name":"bench key","created":"2024-05-01T12:00:00Z","modified":"2024-05-01T12:00:00Z","key":"` + strings.Repeat("ab", 32) + `"}}`)
	GetBody    = []byte(`{"success":true,"errors":[],"messages":[],"result":` + keyJSON + `}`)
	ListBody   = []byte(`{"success":true,"errors":[],"messages":[],"result":[` + strings.TrimSuffix(strings.Repeat(keyJSON+",", 10), ",") + `]}`)
)

// answer picks the canned answer for a request.
func answer(r *http.Request) (int, []byte) {
	switch {
	case r.Method == http.MethodPost:
		return http.StatusCreated, CreateBody
	case strings.HasSuffix(r.URL.Path, "/turn_keys"):
		return http.StatusOK, ListBody
	default:
		return http.StatusOK, GetBody
	}
}

// Handler serves the canned answers over HTTP.
var Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	status, body := answer(r)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
})

// InMemory is an http.RoundTripper that answers without a network, isolating each client's own
// cost from the network stack.
type InMemory struct{}

// RoundTrip implements http.RoundTripper.
func (InMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	status, body := answer(r)
	return &http.Response{
		StatusCode:    status,
		Status:        http.StatusText(status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}
