package turnredis

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// sealVersion is the first byte of every sealed value, so a later format can live beside it.
const sealVersion = 1

// sealer encrypts and authenticates credentials at rest: AES-256-GCM with a key derived by HKDF
// from the TURN key's secret, so read access to Redis alone yields no usable credential. The Redis
// key is the additional data, so a value copied under another identity's key does not open.
type sealer struct{ aead cipher.AEAD }

func newSealer(keyID string, secret turn.Secret) (*sealer, error) {
	k, err := hkdf.Key(sha256.New, []byte(secret.Reveal()), []byte(keyID), "cfturn turnredis credential v1", 32)
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
	return &sealer{aead: aead}, nil
}

var errOpen = errors.New("sealed credential does not open (another TURN key, or tampered)")

// seal encodes c as sent, fresh-until and expiry (Unix nanoseconds), the username's length and
// bytes, then the body; and encrypts it.
func (s *sealer) seal(redisKey string, c *turn.ICECredential) []byte {
	plain := make([]byte, 0, 26+len(c.Username)+len(c.Body))
	plain = binary.BigEndian.AppendUint64(plain, uint64(c.Sent.UnixNano()))
	plain = binary.BigEndian.AppendUint64(plain, uint64(c.FreshUntil.UnixNano()))
	plain = binary.BigEndian.AppendUint64(plain, uint64(c.Expires.UnixNano()))
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(c.Username)))
	plain = append(plain, c.Username...)
	plain = append(plain, c.Body...)

	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:])
	return s.aead.Seal(out, out[1:], plain, []byte(redisKey))
}

func (s *sealer) open(redisKey string, v []byte) (*turn.ICECredential, error) {
	n := s.aead.NonceSize()
	if len(v) < 1+n || v[0] != sealVersion {
		return nil, errOpen
	}
	plain, err := s.aead.Open(nil, v[1:1+n], v[1+n:], []byte(redisKey))
	if err != nil || len(plain) < 26 {
		return nil, errOpen
	}
	ulen := int(binary.BigEndian.Uint16(plain[24:26]))
	if len(plain) < 26+ulen {
		return nil, errOpen
	}
	at := func(i int) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(plain[i:i+8]))) }
	return &turn.ICECredential{
		Sent:       at(0),
		FreshUntil: at(8),
		Expires:    at(16),
		Username:   string(plain[26 : 26+ulen]),
		Body:       plain[26+ulen:],
	}, nil
}
