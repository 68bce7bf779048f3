package iceserve

import (
	"net/http"
	"time"
)

// NewTURNRESTEndpoint and NewMatrixEndpoint build the endpoints on any credential path, so the
// tests can run them on the handler through its public API.
func NewTURNRESTEndpoint(keys *TURNRESTKeys, maxUsername int, serve func(http.ResponseWriter, *http.Request, string),
	refused func(*http.Request, string, int), now func() time.Time) http.Handler {
	return &turnRESTEndpoint{keys: keys, maxUsername: maxUsername, serve: serve, refused: refused, now: now}
}

func NewMatrixEndpoint(v *MatrixVerifier, serve func(http.ResponseWriter, *http.Request, string),
	refused func(*http.Request, string, int), now func() time.Time) http.Handler {
	return &matrixEndpoint{verifier: v, serve: serve, refused: refused, now: now}
}
