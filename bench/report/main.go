// Command report turns `go test -bench` output of the bench module into BENCHMARKS.md: medians of
// every benchmark, the ratios against the floor and the SDK, the sizes of minimal programs built
// with each library, the ICE handler's throughput and memory, and the Redis-backed store against the
// in-memory one. Sections of the old report marked as measured by hand are kept. Run it through
// `make bench`.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Targets from the benchmark issue.
const (
	memoryTarget   = 1.5  // cfturn ÷ floor, time and allocations, in memory
	loopbackTarget = 1.1  // cfturn ÷ floor, time, over loopback
	sizeTarget     = 1.3  // cfturn ÷ floor, binary size
	iceHitTarget   = 0.95 // ICEHandler cache hits ÷ bare handler, requests per second
	redisHitTarget = 0.9  // Redis-backed ICEHandler warm hits ÷ in-memory ones, requests per second
)

type sample struct {
	ns, bytes, allocs, reqPerSec, upstream, requests []float64
	peakHeap, retainedHeap                           []float64
	iceReqPerSec, bareReqPerSec, iceOverBare         []float64
	controlOverBare                                  []float64
	units                                            map[string][]float64 // every metric by its unit
}

func main() {
	in := flag.String("in", "results.txt", "go test -bench output")
	out := flag.String("out", "../BENCHMARKS.md", "report to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	samples, cpu, err := parse(in)
	if err != nil {
		return err
	}
	if len(samples) == 0 {
		return fmt.Errorf("%s holds no benchmark results", in)
	}
	sizes, err := buildSizes()
	if err != nil {
		return err
	}
	var b strings.Builder
	goVersion := runtime.Version()
	if v, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		goVersion = strings.TrimSpace(string(v))
	}
	fmt.Fprintf(&b, "# Benchmarks\n\nMeasured %s on %s/%s, %s, %d CPUs, %s, by `make bench` (medians of %d runs, all in one run).\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, cpu, runtime.NumCPU(), goVersion, runs(samples))
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fields := strings.Fields(string(load))
		fmt.Fprintf(&b, "The machine is shared with other jobs (load average %s when this report was written): absolute times\n"+
			"are noisy, so read the ratios, which compare libraries measured in this same run, not numbers across runs.\n", fields[0])
	}
	fmt.Fprintf(&b, "\nSame work for each library: create, list (10 keys) and get a TURN key. `floor` is net/http and encoding/json\n"+
		"written by hand; `cfturn` is pkg/turn; `sdk` is github.com/cloudflare/cloudflare-go/v7 (`calls.TURN`). `memory` answers\n"+
		"through an in-memory http.RoundTripper (the client's own cost); `loopback` through an httptest server.\n")
	if samples["ClientsInterleaved/memory/get"] != nil {
		b.WriteString("ns/op, allocations and bytes are `BenchmarkClients`, which measures one library after another; the time\n" +
			"ratios (÷ columns of time, and the targets) are `BenchmarkClientsInterleaved`, where the three take turns call by\n" +
			"call, so that load changing during the run falls on all of them alike.\n")
	}

	for _, mode := range []string{"memory", "loopback"} {
		target := memoryTarget
		if mode == "loopback" {
			target = loopbackTarget
		}
		fmt.Fprintf(&b, "\n## %s\n\n", mode)
		b.WriteString("| op | floor ns/op | cfturn ns/op | sdk ns/op | floor allocs | cfturn allocs | sdk allocs | cfturn B/op | cfturn÷floor time | cfturn÷floor allocs | sdk÷floor time | sdk÷floor allocs | cfturn÷sdk time | target |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, op := range []string{"create", "list", "get"} {
			f, c, s := samples["Clients/"+mode+"/"+op+"/floor"], samples["Clients/"+mode+"/"+op+"/cfturn"], samples["Clients/"+mode+"/"+op+"/sdk"]
			if f == nil || c == nil || s == nil {
				return fmt.Errorf("missing results for %s/%s", mode, op)
			}
			tRatio, aRatio := median(c.ns)/median(f.ns), median(c.allocs)/median(f.allocs)
			sdkRatio, cfturnOverSDK := median(s.ns)/median(f.ns), median(c.ns)/median(s.ns)
			if il := samples["ClientsInterleaved/"+mode+"/"+op]; il != nil {
				tRatio, sdkRatio, cfturnOverSDK = median(il.units["cfturn/floor"]), median(il.units["sdk/floor"]), median(il.units["cfturn/sdk"])
			}
			met := tRatio <= target
			if mode == "memory" {
				met = met && aRatio <= target
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | ≤%.1f: %s |\n",
				op, median(f.ns), median(c.ns), median(s.ns), median(f.allocs), median(c.allocs), median(s.allocs), median(c.bytes),
				tRatio, aRatio, sdkRatio, median(s.allocs)/median(f.allocs), cfturnOverSDK, target, verdict(met))
		}
	}

	b.WriteString("\n## Binary size of a minimal \"create a key\" program\n\n`go build` of `bench/sizes/*` with default flags.\n\n| library | bytes | ÷ floor | target |\n|---|---:|---:|---|\n")
	for _, lib := range []string{"floor", "cfturn", "sdk"} {
		ratio := float64(sizes[lib]) / float64(sizes["floor"])
		target := ""
		if lib == "cfturn" {
			target = fmt.Sprintf("≤%.1f: %s", sizeTarget, verdict(ratio <= sizeTarget))
		}
		fmt.Fprintf(&b, "| %s | %d | %.2f | %s |\n", lib, sizes[lib], ratio, target)
	}

	if h := samples["ICEHandler1000Clients"]; h != nil {
		fmt.Fprintf(&b, "\n## ICE handler, 1000 concurrent clients\n\n"+
			"Each round, 1000 clients with distinct identities ask `iceserve.Handler` (over loopback, minting from the fake) at once.\n\n"+
			"| req/s | requests | upstream calls | ns per round |\n|---:|---:|---:|---:|\n| %.0f | %.0f | %.0f | %.0f |\n",
			median(h.reqPerSec), median(h.requests), median(h.upstream), median(h.ns))
	}
	b.WriteString("\n## ICE handler cache hits vs a bare handler\n\n" +
		"Warm cache hits through `iceserve.Handler` (per-identity limiter on, limits set high) against a bare `net/http` handler\n" +
		"writing the same bytes looked up by the same header, over loopback, each client a keep-alive connection with an\n" +
		"identity of its own, connections opened before timing (`BenchmarkICEHandlerCached`). The two take turns within each\n" +
		"op with a second, identical bare server, the control; ratios are medians of the per-run ratios. The control ÷ bare\n" +
		"column is the noise floor: two identical servers differ by that much on this machine.\n\n" +
		"| clients | ICEHandler req/s | bare req/s | ICEHandler ÷ bare | range over runs | control ÷ bare (range) | target |\n|---:|---:|---:|---:|---:|---:|---|\n")
	for _, clients := range []int{64, 1000} {
		s := samples[fmt.Sprintf("ICEHandlerCached/clients=%d", clients)]
		if s == nil {
			return fmt.Errorf("missing BenchmarkICEHandlerCached results for %d clients", clients)
		}
		ratio := median(s.iceOverBare)
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.2f | %.2f–%.2f | %.2f (%.2f–%.2f) | ≥%.2f: %s |\n", clients, median(s.iceReqPerSec), median(s.bareReqPerSec), ratio,
			slices.Min(s.iceOverBare), slices.Max(s.iceOverBare), median(s.controlOverBare), slices.Min(s.controlOverBare), slices.Max(s.controlOverBare),
			iceHitTarget, verdict(ratio >= iceHitTarget))
	}
	if ice, bare := samples["ICEHandlerHit/icehandler"], samples["ICEHandlerHit/bare"]; ice != nil && bare != nil {
		fmt.Fprintf(&b, "\nThe handler's own cost of a hit, without the network (`BenchmarkICEHandlerHit`, ServeHTTP into a recorder):\n"+
			"%.0f ns and %.0f allocations against %.0f ns and %.0f for the bare handler; the difference is a SHA-256 of the\n"+
			"identity and two sharded locks (limiter, cache), small beside HTTP over loopback.\n",
			median(ice.ns), median(ice.allocs), median(bare.ns), median(bare.allocs))
	}
	if m := samples["ServeICEMemory/default"]; m != nil {
		fmt.Fprintf(&b, "\n## serve-ice memory under attack\n\n"+
			"`BenchmarkServeICEMemory/default` in cmd/cfturn: `cfturn serve-ice` with default limits, in-process, gets 1000 requests\n"+
			"with distinct 900 KiB identity headers, then 100,000 distinct small identities from 64 clients. Heap in use of the\n"+
			"whole process (server, fake upstream and clients). Bound by design: identities over 256 bytes are refused\n"+
			"(headers over 64 KiB by net/http with 431) and stored as 16-byte digests; at most 10,000 cached answers of about\n"+
			"1 KiB and 100,000 rate-limit buckets of about 100 bytes, so the handler's tables stay under about 25 MB whatever\n"+
			"callers send; nothing is stored for a refused request.\n\n"+
			"| peak heap MB | retained heap MB after GC |\n|---:|---:|\n| %.1f | %.1f |\n", median(m.peakHeap), median(m.retainedHeap))
	}
	if h, m := samples["RedisStoreWarmHits"], samples["ReplicaMints"]; h != nil && m != nil {
		ratio := median(h.units["redis/memory"])
		fmt.Fprintf(&b, "\n## Several replicas through Redis\n\n"+
			"`BenchmarkRedisStoreWarmHits`: warm cache hits of 64 keep-alive clients through an ICEHandler on `redisstore` (a real\n"+
			"redis-server on loopback) against one on the in-memory store, taking turns within each op; and the Redis round trips\n"+
			"per request, cold (the request that mints) and warm.\n\n"+
			"| Redis-backed req/s | in-memory req/s | Redis ÷ memory | range over runs | Redis calls per cold request | per warm request | target |\n"+
			"|---:|---:|---:|---:|---:|---:|---|\n| %.0f | %.0f | %.2f | %.2f–%.2f | %.1f | %.3f | ≥%.1f: %s |\n",
			median(h.units["redis-req/s"]), median(h.units["memory-req/s"]), ratio, slices.Min(h.units["redis/memory"]), slices.Max(h.units["redis/memory"]),
			median(h.units["redis-calls/cold-req"]), median(h.units["redis-calls/warm-req"]), redisHitTarget, verdict(ratio >= redisHitTarget))
		fmt.Fprintf(&b, "\n`BenchmarkReplicaMints`: %.0f identities each ask 3 times, round-robin over the replicas, against a fresh key.\n\n"+
			"| replicas | store | upstream mints |\n|---:|---|---:|\n| 1 | memory | %.0f |\n| 3 | memory each | %.0f |\n| 3 | Redis, shared | %.0f |\n",
			median(m.units["identities"]), median(m.units["mints-1-replica"]), median(m.units["mints-3-replicas-memory"]), median(m.units["mints-3-replicas-redis"]))
	}
	b.WriteString(notes)
	kept, err := keptSections(out)
	if err != nil {
		return err
	}
	b.WriteString(kept)
	return os.WriteFile(out, []byte(b.String()), 0o644)
}

// keptSections returns the sections of the report at path that were measured by hand, not by this
// command: each runs from a line starting "<!-- section:" to one starting "<!-- end section", and
// is carried over as it is.
func keptSections(path string) (string, error) {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var kept strings.Builder
	in := false
	for line := range strings.Lines(string(old)) {
		if strings.HasPrefix(line, "<!-- section:") {
			in = true
			kept.WriteString("\n")
		}
		if in {
			kept.WriteString(line)
		}
		if strings.HasPrefix(line, "<!-- end section") {
			in = false
		}
	}
	if in {
		return "", fmt.Errorf("%s: a section is not closed by <!-- end section -->", path)
	}
	return kept.String(), nil
}

const notes = `
## What limits cfturn

Profiles (` + "`go test -bench '^BenchmarkClients$/memory' -memprofile`" + `) put cfturn's remaining cost over the floor in two places:

- The per-attempt timeout: when the caller's context has no deadline, each attempt gets one (default 30s),
  a context and a timer, about 4 allocations and 0.4µs, that buy cancellation of a hung call.
- Reading the body whole, through the size cap, before decoding it (the floor streams into the decoder):
  it bounds memory against a hostile endpoint and lets errors keep a short excerpt of a body that is not JSON.

What was improved after profiling: pkg/turn builds every request with the builders generated from the spec
(gen/callsclient). oapi-codegen's default builders cost about 3.7µs and 16 allocations per request (they parse
the base URL, resolve the operation's path against it and print it, then net/http parses the result again):
ten allocations more per call, which would put get at 46 allocations, 1.39x the floor's 33. gen/callsclient is generated from cfturn's own template
(gen/callsclient/client.tmpl, set in its config.yaml), whose builders still encode each path parameter with the
oapi-codegen runtime but append the path to the server URL as it is: 6 allocations, as many as the
hand-written path templates they replaced, and about 0.2µs of a get's time beyond net/http's NewRequest.
Header values are built once per client, the body buffer is sized from Content-Length, a success envelope is
decoded without allocating for its errors and messages, and the first attempt sends the body as built.

Over loopback the network stack dominates and the libraries differ little; the SDK's extra cost is in its
generic request pipeline and its reflection-based JSON decoding.
`

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// parse reads benchmark lines into samples keyed by name without the Benchmark prefix and -N suffix.
func parse(path string) (map[string]*sample, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	out := map[string]*sample{}
	cpu := "unknown CPU"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if c, ok := strings.CutPrefix(line, "cpu: "); ok {
			cpu = strings.TrimSpace(c)
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(fields[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		s := out[name]
		if s == nil {
			s = &sample{units: map[string][]float64{}}
			out[name] = s
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			s.units[fields[i+1]] = append(s.units[fields[i+1]], v)
			switch fields[i+1] {
			case "ns/op":
				s.ns = append(s.ns, v)
			case "B/op":
				s.bytes = append(s.bytes, v)
			case "allocs/op":
				s.allocs = append(s.allocs, v)
			case "req/s":
				s.reqPerSec = append(s.reqPerSec, v)
			case "upstream-calls":
				s.upstream = append(s.upstream, v)
			case "requests":
				s.requests = append(s.requests, v)
			case "icehandler-req/s":
				s.iceReqPerSec = append(s.iceReqPerSec, v)
			case "bare-req/s":
				s.bareReqPerSec = append(s.bareReqPerSec, v)
			case "icehandler/bare":
				s.iceOverBare = append(s.iceOverBare, v)
			case "control/bare":
				s.controlOverBare = append(s.controlOverBare, v)
			case "peak-heap-MB":
				s.peakHeap = append(s.peakHeap, v)
			case "retained-heap-MB":
				s.retainedHeap = append(s.retainedHeap, v)
			}
		}
	}
	return out, cpu, sc.Err()
}

func runs(samples map[string]*sample) int {
	n := 0
	for _, s := range samples {
		n = max(n, len(s.ns))
	}
	return n
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// buildSizes builds each minimal program and returns its size in bytes.
func buildSizes() (map[string]int64, error) {
	dir, err := os.MkdirTemp("", "cfturn-sizes")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sizes := map[string]int64{}
	for _, lib := range []string{"floor", "cfturn", "sdk"} {
		bin := filepath.Join(dir, lib)
		cmd := exec.Command("go", "build", "-o", bin, "./sizes/"+lib)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("building sizes/%s: %w", lib, err)
		}
		st, err := os.Stat(bin)
		if err != nil {
			return nil, err
		}
		sizes[lib] = st.Size()
	}
	return sizes, nil
}
