package turncheck_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/pion/stun/v4"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
)

func TestCheckRefusesMalformedURLs(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"turn:user:secretpw@127.0.0.1:3478", "no user or password"},
		{"turn:127.0.0.1:+3478", `port "+3478"`},
		{"turn:127.0.0.1:-1", `port "-1"`},
		{"turn:127.0.0.1:", `port ""`},
		{"turn:[::1]:", `port ""`},
		{"turn:::1:3478", "in brackets"},
		{"turn:2001:db8::1", "in brackets"},
		{"turn:[fe80::1%eth0]:3478", "has a zone"},
		{"turn:[::ffff:127.0.0.1]:3478", "write it as 127.0.0.1"},
		{"turn:[::1]x:3478", "junk after the host"},
		{"turn:[::1:3478", "unclosed ["},
		{"turn:[nothost]:3478", "not an IPv6 address"},
		{"turn:[127.0.0.1]:3478", "not an IPv6 address"},
		{"turn:exa%41mple.com:3478", "DNS name"},
		{"turn:example.com\x00.evil:3478", "DNS name"},
		{"turn:a..b:3478", "DNS name"},
		{"turn:-a.example:3478", "DNS name"},
	} {
		_, err := turncheck.Check(context.Background(), []turn.ICEServer{{URLs: []string{tc.url}}}, turncheck.Config{})
		if !errors.Is(err, turncheck.ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want ErrBadInput mentioning %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secretpw") {
			t.Errorf("%q: the password is in the error: %v", tc.url, err)
		}
	}
}

// A STUN server that answers every binding request with 300 Try Alternate, mapped address and
// all, is not ok.
func TestCheckSTUNErrorResponse(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil {
				continue
			}
			resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID),
				stun.NewType(stun.MethodBinding, stun.ClassErrorResponse), stun.CodeTryAlternate,
				&stun.XORMappedAddress{IP: net.IPv4(127, 0, 0, 1), Port: 9}, stun.Fingerprint)
			if err == nil {
				pc.WriteTo(resp.Raw, from)
			}
		}
	}()
	report, err := turncheck.Check(context.Background(), []turn.ICEServer{{URLs: []string{"stun:" + pc.LocalAddr().String()}}}, turncheck.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := report.Results[0]
	if r.Status != turncheck.StatusFailed || !strings.Contains(r.Detail, "STUN error 300") {
		t.Errorf("status %q, detail %q; want failed with STUN error 300", r.Status, r.Detail)
	}
}
