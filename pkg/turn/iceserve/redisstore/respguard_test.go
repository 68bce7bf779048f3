package redisstore

import (
	"strconv"
	"strings"
	"testing"
)

// The scanner follows replies split anywhere, skips bulk payloads (whatever they hold), and
// refuses only sizes over its bounds.
func TestRESPScanner(t *testing.T) {
	payload := "a\r\n*99999999\r\n$99999999999\r\n" // looks like headers, but is a bulk string's bytes
	ok := "+OK\r\n-ERR x\r\n:42\r\n$-1\r\n*-1\r\n_\r\n" +
		"$" + strconv.Itoa(len(payload)) + "\r\n" + payload + "\r\n" +
		"*3\r\n$3\r\nfoo\r\n%1\r\n+k\r\n:1\r\n>2\r\n$7\r\nmessage\r\n=15\r\ntxt:hello world\r\n"
	for _, step := range []int{1, 2, 3, 7, len(ok)} {
		var s respScanner
		for i := 0; i < len(ok); i += step {
			if err := s.feed([]byte(ok[i:min(i+step, len(ok))])); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		if s.skip != 0 || len(s.line) != 0 {
			t.Errorf("step %d: left mid-reply (skip %d, line %q)", step, s.skip, s.line)
		}
	}
	for _, bad := range []string{
		"$" + strconv.Itoa(maxReplyBulk+1) + "\r\n",
		"*" + strconv.Itoa(maxReplyElements+1) + "\r\n",
		"%99999999999999999999999\r\n",
		"+" + strings.Repeat("x", maxReplyLine),
	} {
		var s respScanner
		var err error
		for i := 0; i < len(bad) && err == nil; i += 5 {
			err = s.feed([]byte(bad[i:min(i+5, len(bad))]))
		}
		if err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
}
