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
		if s.skip != 0 || len(s.line) != 0 || len(s.open) != 0 || s.elems != 0 {
			t.Errorf("step %d: left mid-reply (skip %d, line %q, open %v)", step, s.skip, s.line, s.open)
		}
	}
	// Nesting as deep as the bound, and replies of as many elements in all, one after another.
	deep := strings.Repeat("*1\r\n", maxReplyDepth) + ":1\r\n"
	wide := "*2\r\n*" + strconv.Itoa(maxReplyElements/2-1) + "\r\n" + strings.Repeat(":1\r\n", maxReplyElements/2-1) + "*0\r\n"
	var s respScanner
	for _, reply := range []string{deep, wide, deep, wide} {
		if err := s.feed([]byte(reply)); err != nil {
			t.Fatalf("%.40q: %v", reply, err)
		}
	}
	if len(s.open) != 0 || s.elems != 0 {
		t.Errorf("after whole replies: open %v, %d elements", s.open, s.elems)
	}
	for _, bad := range []string{
		strings.Repeat("*1\r\n", maxReplyDepth+1),         // the client would recurse without end
		"*2\r\n*65536\r\n" + strings.Repeat(":1\r\n", 10), // 65,538 elements in all
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
