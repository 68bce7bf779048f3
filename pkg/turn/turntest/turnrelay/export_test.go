package turnrelay

import "time"

// SetStreamAuthTimeout shortens the time a TCP/TLS connection has to make an allocation, for tests of
// servers started after it; the returned func puts the old value back.
func SetStreamAuthTimeout(d time.Duration) func() {
	old := streamAuthTimeout
	streamAuthTimeout = d
	return func() { streamAuthTimeout = old }
}

// PeerCounts returns for how many allocations the relay counts permitted peers.
func (r *Relay) PeerCounts() int {
	r.guard.mu.Lock()
	defer r.guard.mu.Unlock()
	return len(r.guard.peers)
}

// MaxStreamConns is how many TCP (and how many TLS) connections the relay keeps at once.
const MaxStreamConns = maxStreamConns

// MaxChannelsPerAllocation is how many channels one allocation may bind.
const MaxChannelsPerAllocation = maxChannelsPerAllocation
