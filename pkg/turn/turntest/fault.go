package turntest

import (
	"fmt"
	"slices"
	"time"
)

// Operation names an operation of the fake by its operationId in openapi/calls.yaml.
type Operation string

// The operations a Fault can target.
const (
	OpListTurnKeys        Operation = "listTurnKeys"
	OpCreateTurnKey       Operation = "createTurnKey"
	OpGetTurnKey          Operation = "getTurnKey"
	OpUpdateTurnKey       Operation = "updateTurnKey"
	OpDeleteTurnKey       Operation = "deleteTurnKey"
	OpGenerateIceServers  Operation = "generateIceServers"
	OpRevokeIceCredential Operation = "revokeIceCredential"
	// OpGraphQL is the GraphQL Analytics API, POST /client/v4/graphql (not in openapi/calls.yaml).
	OpGraphQL Operation = "graphql"
)

// operations lists every operation of the fake.
var operations = []Operation{OpListTurnKeys, OpCreateTurnKey, OpGetTurnKey, OpUpdateTurnKey, OpDeleteTurnKey, OpGenerateIceServers, OpRevokeIceCredential, OpGraphQL}

// BodyFault replaces the body of an answer with one that breaks the contract.
type BodyFault int

const (
	// BodyAsIs keeps the body the fault's Status implies.
	BodyAsIs BodyFault = iota
	// BodyHTML answers an HTML error page, as Cloudflare's edge does on 5xx.
	BodyHTML
	// BodyEmpty answers no body at all.
	BodyEmpty
	// BodyTruncated processes the request, then sends the first half of the real body.
	BodyTruncated
	// BodySuccessFalse answers the status (200 when Status is 0) with an envelope whose success is false.
	BodySuccessFalse
	// BodyOversize answers a valid-looking JSON body larger than the client's default size cap.
	BodyOversize
)

// Fault makes the fake misbehave for the next Count requests that match Operation.
type Fault struct {
	// Operation is the operation to match, e.g. OpCreateTurnKey; empty matches every operation.
	Operation Operation
	// Count is how many matching requests the fault applies to; 0 means 1.
	Count int

	// Status answers this HTTP status with an error body in the API's own style (the envelope on
	// the key API, plain text on the ICE API). 0 with a Body fault means 200.
	Status int
	// RetryAfter is sent as the Retry-After header when not empty.
	RetryAfter string
	// Body replaces the answer's body.
	Body BodyFault
	// Delay waits before answering. The request is processed after the delay even when the client
	// has given up, as a real server would.
	Delay time.Duration
	// Drop closes the connection without an answer.
	Drop bool
	// AfterProcessing processes the request for real (a create makes its key) before answering
	// with the fault: the case where the server did the work but the answer was lost.
	AfterProcessing bool
	// RedirectTo answers 307 Temporary Redirect to this URL.
	RedirectTo string
}

// InjectFault queues ft. Faults apply in the order they were injected; each matching request
// takes the first queued fault that matches it. It refuses, and queues nothing, a fault whose
// Operation is not one of the Op constants: a typo would otherwise never fire.
func (f *Fake) InjectFault(ft Fault) error {
	if ft.Operation != "" && !slices.Contains(operations, ft.Operation) {
		return fmt.Errorf("turntest: InjectFault: unknown Operation %q: use one of the Op constants, e.g. OpCreateTurnKey", ft.Operation)
	}
	if ft.Count <= 0 {
		ft.Count = 1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, ft)
	return nil
}

// ClearFaults drops every queued fault.
func (f *Fake) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// takeFault returns the first queued fault for op and uses one of its counts.
func (f *Fake) takeFault(op Operation) (Fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.faults {
		ft := &f.faults[i]
		if ft.Operation != "" && ft.Operation != op {
			continue
		}
		out := *ft
		ft.Count--
		if ft.Count == 0 {
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
		}
		return out, true
	}
	return Fault{}, false
}
