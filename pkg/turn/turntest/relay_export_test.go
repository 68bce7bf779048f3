package turntest

import "time"

// SetStreamAuthTimeout shortens the time a TCP/TLS connection has to authenticate, for tests of
// servers started after it; the returned func puts the old value back.
func SetStreamAuthTimeout(d time.Duration) func() {
	old := streamAuthTimeout
	streamAuthTimeout = d
	return func() { streamAuthTimeout = old }
}
