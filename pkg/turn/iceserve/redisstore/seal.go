package redisstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// sealVersion is the first byte of every sealed value, so a later format can live beside it.
const sealVersion = 1

// sealer keeps what Redis holds useless to someone who can only read Redis. Credentials are
// encrypted and authenticated with AES-256-GCM under a key derived by HKDF from the TURN key's
// secret, the Redis key being the additional data, so a value copied under another identity's key
// does not open. Key names are an HMAC of the identity digest under a second derived key, so
// guessed identities (emails, user IDs) cannot be checked against Redis's key space.
type sealer struct {
	aead  cipher.AEAD
	names []byte
}

func newSealer(keyID string, secret turn.Secret) (*sealer, error) {
	derive := func(info string) ([]byte, error) {
		return hkdf.Key(sha256.New, []byte(secret.Reveal()), []byte(keyID), info, 32)
	}
	k, err := derive("cfturn redisstore credential v1")
	if err != nil {
		return nil, err
	}
	names, err := derive("cfturn redisstore key names v1")
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, names: names}, nil
}

var (
	errOpen         = errors.New("sealed value does not open (another TURN key, or tampered)")
	errLongUsername = errors.New("credential username over 65535 bytes")
)

// name is the Redis name of an identity digest.
func (s *sealer) name(key string) string {
	mac := hmac.New(sha256.New, s.names)
	mac.Write([]byte(key))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// sealBytes encrypts plain, bound to aad.
func (s *sealer) sealBytes(aad string, plain []byte) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:])
	return s.aead.Seal(out, out[1:], plain, []byte(aad))
}

func (s *sealer) openBytes(aad string, v []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(v) < 1+n || v[0] != sealVersion {
		return nil, errOpen
	}
	plain, err := s.aead.Open(nil, v[1:1+n], v[1+n:], []byte(aad))
	if err != nil {
		return nil, errOpen
	}
	return plain, nil
}

// seal encodes c as sent, fresh-until and expiry (Unix nanoseconds), the username's length and
// bytes, then the body; and encrypts it under redisKey.
func (s *sealer) seal(redisKey string, c *iceserve.Credential) ([]byte, error) {
	if len(c.Username) > math.MaxUint16 {
		return nil, errLongUsername
	}
	plain := make([]byte, 0, 26+len(c.Username)+len(c.Body))
	plain = binary.BigEndian.AppendUint64(plain, uint64(c.Sent.UnixNano()))
	plain = binary.BigEndian.AppendUint64(plain, uint64(c.FreshUntil.UnixNano()))
	plain = binary.BigEndian.AppendUint64(plain, uint64(c.Expires.UnixNano()))
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(c.Username)))
	plain = append(plain, c.Username...)
	plain = append(plain, c.Body...)
	return s.sealBytes(redisKey, plain), nil
}

func (s *sealer) open(redisKey string, v []byte) (*iceserve.Credential, error) {
	plain, err := s.openBytes(redisKey, v)
	if err != nil || len(plain) < 26 {
		return nil, errOpen
	}
	ulen := int(binary.BigEndian.Uint16(plain[24:26]))
	if len(plain) < 26+ulen {
		return nil, errOpen
	}
	at := func(i int) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(plain[i:i+8]))) }
	return &iceserve.Credential{
		Sent:       at(0),
		FreshUntil: at(8),
		Expires:    at(16),
		Username:   string(plain[26 : 26+ulen]),
		Body:       plain[26+ulen:],
	}, nil
}
