package turn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// withoutRetries returns a copy of c that makes one attempt per call: inside the handler a retry
// would multiply upstream calls by the client's retry count, while the handler's own answer (503
// with Retry-After, or the cached credential) already tells the browser what to do.
func withoutRetries(c *Client) *Client {
	cp := *c
	cp.cfg.maxRetries = 0
	return &cp
}

// errBusy and errBudget refuse a mint before it is sent.
var errBusy = errors.New("all upstream slots busy")

type errBudget struct{ wait time.Duration }

func (e errBudget) Error() string { return "mint budget spent" }

// mint runs as the single flight for key: one upstream attempt, then the rendered credential is
// cached. It runs on its own context, bounded by RequestTimeout, whoever waits for it.
func (h *ICEHandler) mint(key, identity string) (*ICECredential, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.RequestTimeout)
	defer cancel()
	ice, sent, err := h.send(ctx, identity)
	if err != nil {
		return nil, err
	}
	c, err := h.render(ice, sent)
	if err != nil {
		return nil, err
	}
	if err := h.store.SetCredential(ctx, key, c); err != nil {
		// The credential is good; the next request will mint again.
		h.log(ctx, slog.LevelWarn, "turn: ICE handler: store failed", "error", err.Error())
	}
	return c, nil
}

// send makes one upstream attempt if the upstream is not remembered as failing and the mint
// budget allows, once an upstream slot is free. Waiting mints take slots first come, first served
// (a channel's senders queue in order), and the budget bounds how many can wait. It returns the
// credentials and when the request was sent.
func (h *ICEHandler) send(ctx context.Context, identity string) (ICEServers, time.Time, error) {
	now := h.cfg.Now()
	if err := h.breaker.allow(now); err != nil {
		return ICEServers{}, time.Time{}, err
	}
	wait, err := h.store.AllowMint(ctx, h.mintLimit, now)
	if err != nil || wait > 0 {
		h.breaker.cancelProbe()
		if err == nil {
			err = errBudget{wait}
		}
		return ICEServers{}, time.Time{}, err
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		h.breaker.cancelProbe()
		return ICEServers{}, time.Time{}, errBusy
	}
	defer func() { <-h.slots }()
	p := GenerateICEServersParams{KeyID: h.cfg.KeyID, KeySecret: h.cfg.KeySecret, TTL: h.cfg.TTL}
	if h.cfg.CustomIdentifier != nil && identity != "" {
		p.CustomIdentifier = h.cfg.CustomIdentifier(identity)
	}
	h.mints.Add(1)
	h.inFlight.Add(1)
	sent := h.cfg.Now()
	start := time.Now()
	ice, err := h.client.GenerateICEServers(ctx, p)
	took := time.Since(start)
	h.inFlight.Add(-1)
	h.breaker.done(h.cfg.Now(), err, upstreamBackoff(err, h.cfg.RetryAfterMax))
	class := "ok"
	if err != nil {
		c := upstreamClass(err)
		class = classNames[c]
		h.upstreamErrs[c].Add(1)
		// The error text carries no secret (the client's errors never do) and says why, e.g.
		// "connection refused" or the API's own message.
		attrs := []any{"class", class, "took", took, "error", err.Error()}
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			attrs = append(attrs, "status", apiErr.StatusCode, "retry_after", apiErr.RetryAfter, "cf_ray", apiErr.RayID)
		}
		h.log(ctx, slog.LevelWarn, "turn: ICE handler: upstream failure", attrs...)
	}
	if h.cfg.OnMint != nil {
		h.cfg.OnMint(took, class)
	}
	return ice, sent, err
}

// render builds the answer once per credential: port-53 URLs dropped unless kept, expiresAt
// counted from when the request was sent.
func (h *ICEHandler) render(ice ICEServers, sent time.Time) (*ICECredential, error) {
	c := &ICECredential{
		Sent:       sent,
		FreshUntil: sent.Add(time.Duration(float64(h.cfg.TTL) * h.cfg.RefreshFraction)),
		Expires:    sent.Add(h.cfg.TTL),
	}
	out := ICEServers{extra: maps.Clone(ice.extra)}
	for _, s := range ice.Servers {
		if !h.cfg.KeepPort53 {
			s.URLs = dropPort53(s.URLs)
			if len(s.URLs) == 0 {
				continue
			}
		}
		if c.Username == "" {
			c.Username = s.Username
		}
		out.Servers = append(out.Servers, s)
	}
	if out.extra == nil {
		out.extra = make(map[string]json.RawMessage, 1)
	}
	out.extra["expiresAt"] = strconv.AppendInt(nil, c.Expires.Unix(), 10)
	body, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	c.Body = body
	return c, nil
}

// dropPort53 returns urls without those on port 53, e.g. "turn:host:53?transport=udp".
func dropPort53(urls []string) []string {
	kept := make([]string, 0, len(urls))
	for _, u := range urls {
		hostPort, _, _ := strings.Cut(u, "?")
		if i := strings.LastIndexByte(hostPort, ':'); i >= 0 && hostPort[i+1:] == "53" {
			continue
		}
		kept = append(kept, u)
	}
	return kept
}

// Upstream failure classes, the label values of Stats.UpstreamErrors.
const (
	classUnauthorized = iota
	classForbidden
	classNotFound
	classBadRequest
	classRateLimited
	classServer
	classUnexpected
	classTimeout
	classTransport
	numClasses
)

var classNames = [numClasses]string{"unauthorized", "forbidden", "not_found", "bad_request", "rate_limited", "server", "unexpected_response", "timeout", "transport"}

func upstreamClass(err error) int {
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests:
		return classRateLimited
	case errors.Is(err, ErrUnauthorized):
		return classUnauthorized
	case errors.Is(err, ErrForbidden):
		return classForbidden
	case errors.Is(err, ErrNotFound):
		return classNotFound
	case errors.Is(err, ErrBadRequest):
		return classBadRequest
	case errors.Is(err, ErrServer):
		return classServer
	case errors.Is(err, ErrUnexpectedResponse):
		return classUnexpected
	case errors.Is(err, context.DeadlineExceeded):
		return classTimeout
	}
	return classTransport
}

// errorClass names an error's class without its text.
func errorClass(err error) string { return classNames[upstreamClass(err)] }
