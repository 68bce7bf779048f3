package turn

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/cfturn/cfturn/gen/calls"
)

// failureEnvelope is the part of a Cloudflare API envelope a failure needs; its result is not read.
type failureEnvelope struct {
	Success  *bool           `json:"success"`
	Errors   []calls.Message `json:"errors"`
	Messages []calls.Message `json:"messages"`
}

// successEnvelope is the part of an envelope a success needs. Decoding into it skips the errors
// and messages lists without allocating for them; a failure is decoded again in full.
type successEnvelope[T any] struct {
	Success presentBool `json:"success"`
	Result  *T          `json:"result"`
}

// presentBool records whether a JSON boolean was there at all, without a pointer.
type presentBool struct{ set, v bool }

func (p *presentBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		p.set, p.v = true, true
	case "false":
		p.set, p.v = true, false
	default:
		return errors.New("success is not a boolean")
	}
	return nil
}

// decodeEnvelope reads a 2xx envelope response. success is authoritative: success:false is an error
// whatever the status, and success:true without a result is one too, never a zero-value success.
func decodeEnvelope[T any](op *operation, res *response, secrets []Secret) (T, error) {
	var env successEnvelope[T]
	var zero T
	if err := json.Unmarshal(res.body, &env); err != nil || !env.Success.set {
		return zero, unexpected(op, res, secrets, describeBody(res, err))
	}
	if !env.Success.v {
		var full failureEnvelope
		json.Unmarshal(res.body, &full)
		e := unexpected(op, res, secrets, "success is false")
		e.Errors, e.Messages, e.Excerpt = messages(full.Errors, secrets), messages(full.Messages, secrets), ""
		return zero, e
	}
	if env.Result == nil {
		return zero, unexpected(op, res, secrets, "success without a result")
	}
	return *env.Result, nil
}

// statusError turns a non-2xx response into an *APIError.
func statusError(op *operation, res *response, secrets []Secret) *APIError {
	if res.status >= 300 && res.status < 400 {
		return unexpected(op, res, secrets, "redirect not followed: cfturn follows redirects only within the same host")
	}
	if !op.envelope {
		e := newAPIError(op, res)
		e.Excerpt = excerpt(res.body, secrets)
		return e
	}
	var env failureEnvelope
	err := json.Unmarshal(res.body, &env)
	if err == nil && op.emptyFailure && isEmptyObject(res.body) {
		// Documented for delete: the status alone says what went wrong.
		e := newAPIError(op, res)
		e.Excerpt = "{}"
		return e
	}
	if err != nil || env.Success == nil || len(env.Errors) == 0 {
		return unexpected(op, res, secrets, describeBody(res, err))
	}
	e := newAPIError(op, res)
	e.Errors, e.Messages = messages(env.Errors, secrets), messages(env.Messages, secrets)
	return e
}

func newAPIError(op *operation, res *response) *APIError {
	return &APIError{
		Operation:  op.name,
		Method:     op.Method,
		Path:       op.Path,
		StatusCode: res.status,
		RayID:      rayID(res.header),
		RetryAfter: parseRetryAfter(res.header.Get("Retry-After"), time.Now()),
		Attempts:   1,
	}
}

// rayID returns the answer's cf-ray header when it looks like one (up to 64 letters, digits and
// '-', such as 8f1e2d3c4b5a6978-SJC), and "" otherwise: errors and logs show it, and a server that
// echoed a credential or a flood of bytes there must not put them into either.
func rayID(h http.Header) string {
	ray := h.Get("Cf-Ray")
	if len(ray) > 64 || credentialLike.MatchString(ray) || strings.ContainsFunc(ray, func(r rune) bool {
		return r != '-' && !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) {
		return ""
	}
	return ray
}

// unexpected reports a body that is not what the API documents.
func unexpected(op *operation, res *response, secrets []Secret, reason string) *APIError {
	e := newAPIError(op, res)
	e.unexpected, e.reason = true, reason
	e.Excerpt = excerpt(res.body, secrets)
	return e
}

// describeBody says in a few words what a body that failed to decode was.
func describeBody(res *response, err error) string {
	ct, _, _ := mime.ParseMediaType(res.header.Get("Content-Type"))
	switch {
	case len(res.body) == 0:
		return "empty body"
	case ct != "" && ct != "application/json":
		return fmt.Sprintf("%s body, not JSON", ct)
	case err != nil:
		return fmt.Sprintf("malformed JSON (%d bytes)", len(res.body))
	case isEmptyObject(res.body):
		return "an empty JSON object, not a Cloudflare API envelope"
	}
	return "JSON that is not a Cloudflare API envelope"
}

// isEmptyObject reports whether body is the JSON object {}, white space aside.
func isEmptyObject(body []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(body, &m) == nil && m != nil && len(m) == 0
}

// messages copies envelope errors or messages, made safe to print: one line each, bounded, with
// known secrets removed.
func messages(in []calls.Message, secrets []Secret) []Message {
	if len(in) == 0 {
		return nil
	}
	out := make([]Message, len(in))
	for i, m := range in {
		out[i] = Message{Code: m.Code, Message: clean(m.Message, secrets, messageLen, false)}
		if m.DocumentationUrl != nil {
			out[i].DocumentationURL = clean(*m.DocumentationUrl, secrets, messageLen, false)
		}
		if m.Source != nil && m.Source.Pointer != nil {
			out[i].SourcePointer = clean(*m.Source.Pointer, secrets, messageLen, false)
		}
	}
	return out
}
