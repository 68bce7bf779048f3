// Package turncheck checks that ICE servers work: that a STUN server answers a binding request,
// that TURN credentials allocate a relay over UDP, TCP or TLS, and that a packet goes through the
// relay and back. It is what `cfturn check` runs, against Cloudflare (turn.cloudflare.com) or the
// turntest fake alike.
//
// It lives outside pkg/turn so that programs importing pkg/turn do not link pion, the TURN client
// it is built on.
package turncheck

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Defaults and limits.
const (
	DefaultTimeout = 5 * time.Second
	// MaxTimeout is the longest Config.Timeout Check accepts.
	MaxTimeout  = 5 * time.Minute
	maxURLs     = 64 // URLs checked in one run; more is bad input
	maxInFlight = 16 // URLs probed at once
)

// ErrBadInput is matched by every error about the input: malformed JSON, no URLs, a malformed URL.
var ErrBadInput = errors.New("turncheck: bad input")

// Status is the outcome of one URL's probe.
type Status string

// Outcomes of a probe.
const (
	StatusOK         Status = "ok"
	StatusAuthFailed Status = "auth failed"
	StatusTimeout    Status = "timeout"
	StatusRefused    Status = "refused"
	StatusFailed     Status = "failed"
	StatusSkipped53  Status = "skipped: port 53 is blocked in browsers"
	StatusNoCreds    Status = "skipped: no username or credential"
)

// Config tunes a check. The zero value checks with DefaultTimeout and the system's roots for TLS.
type Config struct {
	// Timeout bounds the whole check (DefaultTimeout when 0; at most MaxTimeout). A URL that has not answered by then
	// is reported as a timeout.
	Timeout time.Duration
	// TLSConfig is cloned for turns: URLs, with ServerName set to the URL's host; set RootCAs to
	// trust a test relay's certificate (turnrelay's Relay.RootCAs).
	TLSConfig *tls.Config
	// IncludePort53 probes URLs on port 53 too; browsers never use them, so they are skipped by default.
	IncludePort53 bool
}

// Result is the outcome of one URL.
type Result struct {
	URL       string `json:"url"`
	Transport string `json:"transport"` // udp, tcp or tls
	Status    Status `json:"result"`
	// Detail says what went wrong when Status is not ok.
	Detail string `json:"detail,omitempty"`
	// RTT is, for a TURN URL, the round trip of a packet through the relay and back; for a STUN
	// URL, of the binding request.
	RTT time.Duration `json:"-"`
	// RelayedAddress is the relay's address of the allocation (TURN).
	RelayedAddress string `json:"relayedAddress,omitempty"`
	// MappedAddress is this host's address as the server saw it (STUN).
	MappedAddress string `json:"mappedAddress,omitempty"`

	isTURN bool
}

// MarshalJSON writes the result with rttMs, the round trip in milliseconds, for scripts.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		RTTms float64 `json:"rttMs,omitempty"`
	}{plain(r), float64(r.RTT.Microseconds()) / 1000})
}

// Report is the outcome of a check: one Result per URL, in the order given.
type Report struct {
	Results []Result
	Elapsed time.Duration
}

// MarshalJSON writes {"results": [...], "turnWorks": bool, "elapsedMs": n}, what cfturn check
// --json prints.
func (r Report) MarshalJSON() ([]byte, error) {
	results := r.Results
	if results == nil {
		results = []Result{}
	}
	return json.Marshal(struct {
		Results   []Result `json:"results"`
		TURNWorks bool     `json:"turnWorks"`
		ElapsedMs int64    `json:"elapsedMs"`
	}{results, r.TURNWorks(), r.Elapsed.Milliseconds()})
}

// TURNWorks reports whether at least one TURN URL allocated a relay that carried a packet both ways.
func (r Report) TURNWorks() bool {
	for _, res := range r.Results {
		if res.isTURN && res.Status == StatusOK {
			return true
		}
	}
	return false
}

// ParseICEServers reads {"iceServers": [...]}, as Cloudflare, turn.ICEServers and cfturn serve-ice
// write it, or a bare [...] list of RTCIceServer objects.
func ParseICEServers(data []byte) ([]turn.ICEServer, error) {
	var list []turn.ICEServer
	if err := json.Unmarshal(data, &list); err == nil {
		return list, nil
	}
	var servers turn.ICEServers
	if err := json.Unmarshal(data, &servers); err != nil {
		return nil, fmt.Errorf("%w: want {\"iceServers\": [...]} or a [...] list of ICE servers: %v", ErrBadInput, err)
	}
	return servers.Servers, nil
}

// Check probes every URL of servers concurrently and returns when all have answered or
// cfg.Timeout (or ctx) has run out, never later. It returns an error, matching ErrBadInput, only
// when the input cannot be checked: no URLs, too many, a malformed one, or a timeout out of range.
func Check(ctx context.Context, servers []turn.ICEServer, cfg Config) (Report, error) {
	type job struct {
		url              iceURL
		username, secret string
	}
	var jobs []job
	for _, s := range servers {
		for _, raw := range s.URLs {
			u, err := parseICEURL(raw)
			if err != nil {
				return Report{}, fmt.Errorf("%w: %v", ErrBadInput, err)
			}
			jobs = append(jobs, job{u, s.Username, s.Credential.Reveal()})
		}
	}
	switch {
	case len(jobs) == 0:
		return Report{}, fmt.Errorf("%w: no URLs in the ICE servers", ErrBadInput)
	case len(jobs) > maxURLs:
		return Report{}, fmt.Errorf("%w: %d URLs, more than %d", ErrBadInput, len(jobs), maxURLs)
	}
	timeout := cfg.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0 || timeout > MaxTimeout:
		return Report{}, fmt.Errorf("%w: timeout %v is not between 0 and %v", ErrBadInput, timeout, MaxTimeout)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	results := make([]Result, len(jobs))
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i, j := range jobs {
		res := &results[i]
		*res = Result{URL: j.url.raw, Transport: j.url.transport, isTURN: j.url.scheme != "stun"}
		switch {
		case j.url.port == 53 && !cfg.IncludePort53:
			res.Status = StatusSkipped53
			continue
		case res.isTURN && (j.username == "" || j.secret == ""):
			res.Status = StatusNoCreds
			continue
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				res.Status, res.Detail = StatusTimeout, "not started before the deadline"
				return
			}
			p := &probe{url: j.url, username: j.username, secret: j.secret, tls: cfg.TLSConfig}
			if res.isTURN {
				p.turn(ctx, res)
			} else {
				p.stun(ctx, res)
			}
		})
	}
	wg.Wait()
	return Report{Results: results, Elapsed: time.Since(start)}, nil
}
