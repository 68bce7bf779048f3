package turntest

import (
	"fmt"
	"testing"
	"time"
)

func TestCredentialTableDropsExpiredFirstThenOldest(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	tab := newCredentialTable(3)
	add := func(name string, ttl time.Duration) {
		tab.add(&credential{username: name, expires: now.Add(ttl)}, now)
	}
	add("long", time.Hour)
	add("short", time.Second)
	add("mid", time.Minute)
	now = now.Add(2 * time.Second) // "short" has expired
	add("new1", time.Hour)
	if tab.get("short") != nil || tab.get("long") == nil {
		t.Fatal("an expired credential should go before the oldest live one")
	}
	add("new2", time.Hour) // full with live credentials: the oldest, "long", goes
	for name, want := range map[string]bool{"long": false, "mid": true, "new1": true, "new2": true} {
		if got := tab.get(name) != nil; got != want {
			t.Errorf("%s kept = %v, want %v", name, got, want)
		}
	}
	if len(tab.byName) != 3 {
		t.Errorf("%d credentials, want 3", len(tab.byName))
	}
	// The list and the buckets hold exactly what the map holds.
	var listed int
	for c := tab.oldest; c != nil; c = c.newer {
		listed++
		if b := tab.buckets[c.bucket]; b[c.slot] != c {
			t.Errorf("%s is not at its bucket slot", c.username)
		}
	}
	var bucketed int
	for _, b := range tab.buckets {
		bucketed += len(b)
	}
	if listed != 3 || bucketed != 3 {
		t.Errorf("listed %d, bucketed %d, want 3 and 3", listed, bucketed)
	}
	// A sweep far in the future drops everything, walking buckets rather than seconds.
	tab.sweep(now.Add(1000 * time.Hour))
	if len(tab.byName) != 0 || len(tab.buckets) != 0 || tab.oldest != nil || tab.newest != nil {
		t.Errorf("after expiry: %d credentials, %d buckets", len(tab.byName), len(tab.buckets))
	}
}

// BenchmarkCredentialTableAdd inserts into a table kept full, with the mix of TTLs real callers use,
// so that each insert evicts or expires another.
func BenchmarkCredentialTableAdd(b *testing.B) {
	for _, size := range []int{1_000, maxCredentials} {
		b.Run(fmt.Sprintf("cap=%d", size), func(b *testing.B) {
			tab := newCredentialTable(size)
			now := time.Unix(1_000_000, 0)
			names := make([]string, size*2)
			for i := range names {
				names[i] = fmt.Sprintf("user%d", i)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				now = now.Add(time.Millisecond)
				ttl := time.Duration(1+i%600) * time.Second
				tab.add(&credential{username: names[i%len(names)], expires: now.Add(ttl)}, now)
			}
		})
	}
}
