package turnusage_test

import (
	"testing"

	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

func TestBytes(t *testing.T) {
	for in, want := range map[string]uint64{"900GB": 900e9, "1.5 TB": 1.5e12, "512MiB": 512 << 20, "1000B": 1000, "0": 0, "10kb": 10e3, "2g": 2e9} {
		got, err := turnusage.ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "-1GB", "lots", "1e30PB", "NaN", "900", "1.5"} {
		if _, err := turnusage.ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
	for n, want := range map[uint64]string{0: "0 B", 999: "999 B", 1000: "1.00 kB", 1500000: "1.50 MB", 999_499: "999 kB", 999_500: "1.00 MB", 12_345_678_901: "12.3 GB"} {
		if got := turnusage.FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if c := turnusage.EstimateCost(1200*turnusage.GB, turnusage.DefaultFreeTierBytes, turnusage.DefaultPricePerGB); c < 9.999 || c > 10.001 {
		t.Errorf("1,200 GB cost %v, want $10 (200 GB over the free tier at $0.05)", c)
	}
	if c := turnusage.EstimateCost(900*turnusage.GB, turnusage.DefaultFreeTierBytes, turnusage.DefaultPricePerGB); c != 0 {
		t.Errorf("900 GB cost %v, want 0 within the free tier", c)
	}
}
