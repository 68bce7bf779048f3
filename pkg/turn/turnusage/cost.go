package turnusage

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Cloudflare's published TURN pricing when this was written: egress is billed at $0.05 per GB
// after 1,000 GB a month, a free tier shared with the Realtime SFU. Check Cloudflare's pricing page
// before relying on them.
const (
	DefaultFreeTierBytes = 1000 * GB
	DefaultPricePerGB    = 0.05
)

// Byte units: decimal as Cloudflare bills (a GB is 10⁹ bytes), and binary for ParseBytes.
const (
	KB uint64 = 1000
	MB        = 1000 * KB
	GB        = 1000 * MB
	TB        = 1000 * GB
)

// EstimateCost returns what egress would cost in US dollars beyond a free tier at pricePerGB.
// It is an estimate: the analytics are sampled, the free tier is per calendar month and shared
// with the SFU, and Cloudflare's invoice is what counts.
func EstimateCost(egressBytes, freeTierBytes uint64, pricePerGB float64) float64 {
	if egressBytes <= freeTierBytes || pricePerGB <= 0 {
		return 0
	}
	return float64(egressBytes-freeTierBytes) / float64(GB) * pricePerGB
}

var byteUnits = []struct {
	suffix string
	size   float64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40}, {"PIB", 1 << 50},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"B", 1},
}

// ParseBytes reads a size such as "900GB", "1.5 TB", "512MiB" or "1000000B": decimal units (kB,
// MB, GB, TB, PB; a GB is 10⁹ bytes, as Cloudflare bills) or binary ones (KiB ... PiB). A number
// other than 0 needs a unit, B for bytes.
func ParseBytes(s string) (uint64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.size
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if mult == 1.0 && !strings.HasSuffix(strings.ToUpper(strings.TrimSpace(s)), "B") && err == nil && n != 0 {
		// A bare number is too easily meant as GB: "--egress-budget 900" would be 900 bytes.
		return 0, fmt.Errorf("turnusage: %q has no unit: write e.g. 900GB, or 900B for bytes", s)
	}
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) || t == "" {
		return 0, fmt.Errorf("turnusage: %q is not a size: write a number and a unit, e.g. 900GB, 1.5TB or 512MiB", s)
	}
	v := n * mult
	if v >= math.MaxUint64 {
		return 0, fmt.Errorf("turnusage: %q is too large", s)
	}
	return uint64(v), nil
}

// FormatBytes writes n in decimal units with three significant digits, e.g. "1.50 GB", "999 kB".
func FormatBytes(n uint64) string {
	if n < 1000 {
		return strconv.FormatUint(n, 10) + " B"
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n)
	i := -1
	for v >= 999.5 && i < len(units)-1 {
		v /= 1000
		i++
	}
	switch {
	case v >= 99.95:
		return fmt.Sprintf("%.0f %s", v, units[i])
	case v >= 9.995:
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.2f %s", v, units[i])
}
