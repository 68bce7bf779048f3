package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Floor is the least a Go program can do to call the API: net/http and encoding/json written by
// hand, no validation, no retries.
type Floor struct {
	HC   *http.Client
	Base string // API root, e.g. https://api.cloudflare.com/client/v4
}

// FloorKey is a key as the floor decodes it.
type FloorKey struct {
	UID      string    `json:"uid"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Modified time.Time `json:"modified"`
	Key      string    `json:"key"`
}

type floorEnvelope[T any] struct {
	Success bool `json:"success"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Result T `json:"result"`
}

func floorDo[T any](ctx context.Context, f *Floor, method, path string, body any) (T, error) {
	var out floorEnvelope[T]
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return out.Result, err
		}
		rd = bytes.NewReader(b)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, method, f.Base+path, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, f.Base+path, nil)
	}
	if err != nil {
		return out.Result, err
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.HC.Do(req)
	if err != nil {
		return out.Result, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out.Result, err
	}
	if !out.Success {
		return out.Result, fmt.Errorf("status %d", resp.StatusCode)
	}
	return out.Result, nil
}

// Create creates a key.
func (f *Floor) Create(ctx context.Context, name string) (FloorKey, error) {
	return floorDo[FloorKey](ctx, f, http.MethodPost, "/accounts/"+Account+"/calls/turn_keys", map[string]string{"name": name})
}

// List lists keys.
func (f *Floor) List(ctx context.Context) ([]FloorKey, error) {
	return floorDo[[]FloorKey](ctx, f, http.MethodGet, "/accounts/"+Account+"/calls/turn_keys", nil)
}

// Get gets a key.
func (f *Floor) Get(ctx context.Context, id string) (FloorKey, error) {
	return floorDo[FloorKey](ctx, f, http.MethodGet, "/accounts/"+Account+"/calls/turn_keys/"+id, nil)
}
