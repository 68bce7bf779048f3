package iceserve

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// stunOnlyLifetime is the expiresAt of a STUN-only answer: a page that refreshes at expiresAt
// asks again soon, and gets TURN back once it is no longer withheld (a new month, a raised budget).
const stunOnlyLifetime = 5 * time.Minute

// defaultSTUN is the STUN server Cloudflare documents, answered while nothing has been minted.
var defaultSTUN = []byte(`[{"urls":["stun:stun.cloudflare.com:3478"]}]`)

// keepSTUN remembers the STUN entries of a mint's answer (those without a credential and
// without a turn: URL), port 53 dropped unless kept, for STUN-only answers.
func (h *Handler) keepSTUN(servers []turn.ICEServer) {
	var b bytes.Buffer
	b.WriteByte('[')
	n := 0
	for _, s := range servers {
		urls := s.URLs
		if !h.cfg.KeepPort53 {
			urls = dropPort53(urls)
		}
		if s.Username != "" || !s.Credential.IsZero() || len(urls) == 0 {
			continue
		}
		stun := urls[:0:0]
		for _, u := range urls {
			if !isTURNURL(u) {
				stun = append(stun, u)
			}
		}
		if len(stun) == 0 {
			continue
		}
		if n++; n > 1 {
			b.WriteByte(',')
		}
		b.WriteString(`{"urls":`)
		writeJSON(&b, stun)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	if n > 0 && b.Len() <= maxAnswerBytes {
		out := b.Bytes()
		h.stunOnly.Store(&out)
	}
}

// writeWithheld answers without Cloudflare's TURN, minting nothing upstream: coturn's servers
// alone when Coturn is set (self-hosted, not billed by Cloudflare), else the STUN servers alone.
func (h *Handler) writeWithheld(w http.ResponseWriter, id string, now time.Time) {
	h.withheld.Add(1)
	if h.cfg.Coturn != nil {
		server, _ := h.cfg.Coturn.Mint(id, now)
		if c, err := h.render(turn.ICEServers{Servers: []turn.ICEServer{server}}, now); err == nil {
			h.write(w, c.Body)
			return
		}
	}
	servers := defaultSTUN
	if p := h.stunOnly.Load(); p != nil {
		servers = *p
	}
	body := make([]byte, 0, len(servers)+48)
	body = append(body, `{"iceServers":`...)
	body = append(body, servers...)
	body = append(body, `,"expiresAt":`...)
	body = strconv.AppendInt(body, now.Add(stunOnlyLifetime).Unix(), 10)
	body = append(body, "}\n"...)
	h.write(w, body)
}
