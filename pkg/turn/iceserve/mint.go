package iceserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// errBusy and errBudget refuse a mint before it is sent.
var errBusy = errors.New("all upstream slots busy")

type errBudget struct {
	wait    time.Duration
	network bool // the source network's share was spent, not the whole budget
}

func (e errBudget) Error() string { return "mint budget spent" }

// mintRequest is what a mint needs besides the identity's key: the customIdentifier tag (already
// checked) and the source network whose share a new identity spends ("" for none).
type mintRequest struct {
	tag     string
	network string
	isNew   bool

	identity string // for a merged coturn credential's pseudonym
}

// mint runs as the single flight for key: one upstream attempt, then the rendered credential is
// cached. It runs on its own context, bounded by RequestTimeout, whoever waits for it.
func (h *Handler) mint(key string, m mintRequest) (*Credential, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.RequestTimeout)
	defer cancel()
	shared := m.isNew && m.network != "" && h.shareLimit.PerSecond > 0
	if shared {
		now, netKey := h.cfg.Now(), networkKey(m.network)
		wait, err := h.store.Allow(ctx, netKey, h.shareLimit, now)
		switch {
		case errors.Is(err, ErrStoreFull):
			return nil, err
		case err != nil:
			// Answered as a busy store: 503 with Retry-After, never counted upstream.
			return nil, fmt.Errorf("%w: source network's share: %w", ErrStoreBusy, err)
		}
		if wait > 0 {
			return nil, errBudget{wait: wait, network: true}
		}
		defer func() {
			if shared {
				// The share counts credentials minted, not attempts refused.
				h.store.Refund(ctx, netKey, h.shareLimit, now)
			}
		}()
	}
	c, err := h.send(ctx, m.tag, m.identity)
	if err != nil {
		return nil, err
	}
	shared = false
	if err := h.store.SetCredential(ctx, key, c); err != nil {
		// The credential is good; the next request will mint again.
		h.log(ctx, slog.LevelWarn, "iceserve: store failed", "error", err.Error())
	}
	return c, nil
}

// send makes one upstream attempt if the upstream is not remembered as failing and the mint
// budget allows, once an upstream slot is free. Waiting mints take slots first come, first served
// (a channel's senders queue in order), and the budget bounds how many can wait. The breaker is
// asked again once the slot is held, so mints that queued while the upstream was answering are
// not sent after it stopped. It returns the rendered credential.
func (h *Handler) send(ctx context.Context, tag, identity string) (*Credential, error) {
	now := h.cfg.Now()
	if err := h.breaker.check(now); err != nil {
		return nil, err
	}
	wait, err := h.store.AllowMint(ctx, h.mintLimit, now)
	if err != nil || wait > 0 {
		if err == nil {
			err = errBudget{wait: wait}
		}
		return nil, err
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, errBusy
	}
	defer func() { <-h.slots }()
	if err := h.breaker.allow(h.cfg.Now()); err != nil {
		return nil, err
	}
	p := turn.GenerateICEServersParams{KeyID: h.cfg.KeyID, KeySecret: h.cfg.KeySecret, TTL: h.cfg.TTL, CustomIdentifier: tag}
	h.mints.Add(1)
	h.inFlight.Add(1)
	sent := h.cfg.Now()
	start := time.Now()
	ice, err := h.client.GenerateICEServers(ctx, p)
	took := time.Since(start)
	h.inFlight.Add(-1)
	var c *Credential
	if err == nil {
		if ice, err = h.merge(ice, identity, sent); err == nil {
			c, err = h.render(ice, sent)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, turn.ErrInvalidArgument) {
		// Not the upstream's doing: the caller went away, or the request was refused before it
		// was sent. Neither may hold minting off for everyone else.
		h.breaker.cancelProbe()
		h.log(ctx, slog.LevelDebug, "iceserve: mint not completed", "reason", localReason(err))
		return nil, err
	}
	h.breaker.done(h.cfg.Now(), err, upstreamBackoff(err, h.cfg.RetryAfterMax))
	class := "ok"
	if err == nil {
		h.recovered(ctx)
	}
	if err != nil {
		c := upstreamClass(err)
		class = classNames[c]
		h.upstreamErrs[c].Add(1)
		// The error text carries no secret (the client's errors never do) and says why, e.g.
		// "connection refused" or the API's own message.
		attrs := []any{"class", class, "took", took, "error", err.Error()}
		var apiErr *turn.APIError
		if errors.As(err, &apiErr) {
			attrs = append(attrs, "status", apiErr.StatusCode, "retry_after", apiErr.RetryAfter, "cf_ray", apiErr.RayID)
		}
		h.log(ctx, slog.LevelWarn, "iceserve: upstream failure", attrs...)
	}
	if h.cfg.OnMint != nil {
		h.cfg.OnMint(took, class)
	}
	return c, err
}

func localReason(err error) string {
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	return "invalid_argument"
}

// Bounds of what is cached per identity, whatever the upstream sends: a browser needs the URLs,
// the username and the credential; unknown fields are kept only while they are small.
const (
	maxAnswerBytes  = 4 << 10
	maxUnknownBytes = 512
)

// errUnusable is an upstream answer a browser cannot use, or too big to cache.
type errUnusable struct{ reason string }

func (e errUnusable) Error() string {
	return "iceserve: unusable upstream answer: " + e.reason
}
func (e errUnusable) Is(t error) bool { return t == turn.ErrUnexpectedResponse }

// render builds the answer once per credential: port-53 URLs dropped unless kept, expiresAt
// counted from when the request was sent, unknown fields kept only up to maxUnknownBytes in all.
// An answer left without a turn: or turns: entry with a username and a credential is refused: a
// browser could only use it for STUN, and caching it would hide the next good answer.
func (h *Handler) render(ice turn.ICEServers, sent time.Time) (*Credential, error) {
	c := &Credential{
		Sent:       sent,
		FreshUntil: sent.Add(time.Duration(float64(h.cfg.TTL) * h.cfg.RefreshFraction)),
		Expires:    sent.Add(h.cfg.TTL),
	}
	unknown := 0
	count := func(fields map[string]json.RawMessage) {
		for k, v := range fields {
			unknown += len(k) + len(v)
		}
	}
	count(ice.Extra)
	for _, s := range ice.Servers {
		count(s.Extra)
	}
	keepUnknown := unknown <= maxUnknownBytes

	h.keepSTUN(ice.Servers)
	var body bytes.Buffer
	body.WriteString(`{"iceServers":[`)
	usable := false
	n := 0
	for _, s := range ice.Servers {
		urls := s.URLs
		if !h.cfg.KeepPort53 {
			urls = dropPort53(urls)
		}
		if len(urls) == 0 {
			continue
		}
		secret := s.Credential.Reveal()
		if s.Username != "" && secret != "" && slices.ContainsFunc(urls, isTURNURL) {
			usable = true
		}
		if c.Username == "" {
			c.Username = s.Username
		}
		if n++; n > 1 {
			body.WriteByte(',')
		}
		body.WriteString(`{"urls":`)
		writeJSON(&body, urls)
		if s.Username != "" {
			body.WriteString(`,"username":`)
			writeJSON(&body, s.Username)
		}
		if secret != "" {
			body.WriteString(`,"credential":`)
			writeJSON(&body, secret)
		}
		if keepUnknown {
			writeFields(&body, s.Extra)
		}
		body.WriteByte('}')
	}
	body.WriteString(`]`)
	if keepUnknown {
		writeFields(&body, ice.Extra, "expiresAt")
	}
	body.WriteString(`,"expiresAt":`)
	body.WriteString(strconv.FormatInt(c.Expires.Unix(), 10))
	body.WriteString("}\n") // a line of its own, as curl prints it
	switch {
	case !usable && h.cfg.KeepPort53:
		return nil, errUnusable{"no turn: or turns: entry with a username and a credential"}
	case !usable:
		return nil, errUnusable{"no turn: or turns: entry with a username and a credential off port 53"}
	case body.Len() > maxAnswerBytes:
		return nil, errUnusable{fmt.Sprintf("%d bytes without unknown fields, over the %d kept per caller", body.Len(), maxAnswerBytes)}
	}
	c.Body = body.Bytes()
	return c, nil
}

// isTURNURL reports a turn: or turns: URL.
func isTURNURL(u string) bool {
	scheme, _, ok := strings.Cut(u, ":")
	return ok && (strings.EqualFold(scheme, "turn") || strings.EqualFold(scheme, "turns"))
}

func writeJSON(b *bytes.Buffer, v any) {
	enc, _ := json.Marshal(v) // strings and string slices always encode
	b.Write(enc)
}

// writeFields appends ,"k":v for fields other than skip, in key order.
func writeFields(b *bytes.Buffer, fields map[string]json.RawMessage, skip ...string) {
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if slices.Contains(skip, k) {
			continue
		}
		b.WriteByte(',')
		writeJSON(b, k)
		b.WriteByte(':')
		b.Write(fields[k])
	}
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
	var apiErr *turn.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests:
		return classRateLimited
	case errors.Is(err, turn.ErrUnauthorized):
		return classUnauthorized
	case errors.Is(err, turn.ErrForbidden):
		return classForbidden
	case errors.Is(err, turn.ErrNotFound):
		return classNotFound
	case errors.Is(err, turn.ErrBadRequest):
		return classBadRequest
	case errors.Is(err, turn.ErrServer):
		return classServer
	case errors.Is(err, turn.ErrUnexpectedResponse):
		return classUnexpected
	case errors.Is(err, context.DeadlineExceeded):
		return classTimeout
	}
	return classTransport
}

// errorClass names an error's class without its text.
func errorClass(err error) string { return classNames[upstreamClass(err)] }
