package turntest

import "time"

// credential is one minted ICE credential.
type credential struct {
	username, secret string
	keyID            string
	customIdentifier string
	expires          time.Time
	revoked          bool
	relayed          traffic // bytes a relay reported for it

	// Links of the table's insertion-order list, and the credential's place in its expiry bucket.
	older, newer *credential
	bucket       int64
	slot         int
}

// credentialTable holds live credentials with O(1) amortised insert and expiry, whatever its size:
// an insertion-order list (the oldest go first when it is full) and buckets of credentials by the
// second they expire in (a sweep drops whole buckets that lie in the past). Expired credentials
// still in the current second's bucket are refused on lookup by their expiry, not by the sweep.
type credentialTable struct {
	max          int
	byName       map[string]*credential
	oldest       *credential
	newest       *credential
	buckets      map[int64][]*credential // Unix second of expiry → credentials
	sweptBefore  int64                   // every bucket before this second is gone
	identifiers  map[string]*traffic     // customIdentifier → bytes relayed for its credentials
	maxIdentKeys int
}

func newCredentialTable(max int) *credentialTable {
	return &credentialTable{
		max:          max,
		byName:       make(map[string]*credential),
		buckets:      make(map[int64][]*credential),
		identifiers:  make(map[string]*traffic),
		maxIdentKeys: max,
	}
}

// add records c, first dropping credentials that expired before now's second, then the oldest
// while the table is full.
func (t *credentialTable) add(c *credential, now time.Time) {
	t.sweep(now)
	for len(t.byName) >= t.max {
		t.remove(t.oldest)
	}
	if old := t.byName[c.username]; old != nil {
		t.remove(old)
	}
	t.byName[c.username] = c
	c.older, c.newer = t.newest, nil
	if t.newest != nil {
		t.newest.newer = c
	} else {
		t.oldest = c
	}
	t.newest = c
	c.bucket = c.expires.Unix()
	c.slot = len(t.buckets[c.bucket])
	t.buckets[c.bucket] = append(t.buckets[c.bucket], c)
}

// get returns the credential named username, or nil.
func (t *credentialTable) get(username string) *credential { return t.byName[username] }

// identifier returns the byte counts of a customIdentifier, making them unless the table already
// counts for as many identifiers as it holds credentials (then nil: that identifier is not counted).
func (t *credentialTable) identifier(id string) *traffic {
	n := t.identifiers[id]
	if n == nil && len(t.identifiers) < t.maxIdentKeys {
		n = new(traffic)
		t.identifiers[id] = n
	}
	return n
}

// remove unlinks c from the list and its bucket in O(1).
func (t *credentialTable) remove(c *credential) {
	delete(t.byName, c.username)
	t.unlink(c)
	b := t.buckets[c.bucket]
	last := b[len(b)-1]
	b[c.slot], last.slot = last, c.slot
	b[len(b)-1] = nil
	if b = b[:len(b)-1]; len(b) == 0 {
		delete(t.buckets, c.bucket)
	} else {
		t.buckets[c.bucket] = b
	}
}

// sweep drops every bucket of a second before now's. It walks the seconds since the last sweep
// or the buckets, whichever are fewer, so its cost is paid for by the inserts that made them.
func (t *credentialTable) sweep(now time.Time) {
	before := now.Unix()
	if before <= t.sweptBefore {
		return
	}
	drop := func(sec int64) {
		for _, c := range t.buckets[sec] {
			delete(t.byName, c.username)
			t.unlink(c)
		}
		delete(t.buckets, sec)
	}
	if before-t.sweptBefore <= int64(len(t.buckets)) {
		for sec := t.sweptBefore; sec < before; sec++ {
			drop(sec)
		}
	} else {
		for sec := range t.buckets {
			if sec < before {
				drop(sec)
			}
		}
	}
	t.sweptBefore = before
}

// unlink takes c out of the insertion-order list only (its bucket is being dropped whole).
func (t *credentialTable) unlink(c *credential) {
	if c.older != nil {
		c.older.newer = c.newer
	} else {
		t.oldest = c.newer
	}
	if c.newer != nil {
		c.newer.older = c.older
	} else {
		t.newest = c.older
	}
	c.older, c.newer = nil, nil
}
