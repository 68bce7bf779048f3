package redisstore

import "crypto/sha256"

// RedisName is the name Redis keys of identity end in, for tests that look at Redis: the keyed
// digest of the handler's 16-byte SHA-256 digest of the identity, in braces (a hash tag).
func RedisName(s *Store, identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return "{" + s.seal.name(string(sum[:16])) + "}"
}
