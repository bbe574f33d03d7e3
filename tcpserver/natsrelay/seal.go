package natsrelay

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
)

// What a MAC vouches for besides the payload: the purpose of the message,
// so that one kind of message cannot pass for another, and, after it, the
// subject the message travels on (for a names entry, its key), so that a
// message cannot be moved to another room, node or name.
const (
	purposeEvent   = "event"   // a room event, on a room subject
	purposePrivate = "private" // a private message, on the recipient node's subject
	purposeReply   = "reply"   // a node's answer to a private message; "subject" is the request's
	purposeName    = "name"    // a names bucket entry; "subject" is its key
	purposeBeat    = "beat"    // a node's heartbeat in the names bucket; "subject" is its key
	purposeState   = "state"   // a state record; "subject" is bucket/key
)

// A sealed message is its MAC, HMAC-SHA256 in unpadded base64url, then a
// dot, then the payload (JSON). The MAC comes first, at a fixed length, so
// that it is checked before anything in the payload is read.
const (
	macLen    = 43 // base64.RawURLEncoding.EncodedLen(sha256.Size)
	sealedMin = macLen + 1
)

// errUnverified is what open returns for a message without a valid MAC:
// someone without the cluster secret made it, or changed it.
var errUnverified = errors.New("no valid MAC")

// A sealer signs and checks the messages of one cluster, and hides the text
// of its private messages. Both keys come from the cluster secret and the
// prefix, so that two deployments sharing a NATS and a secret still cannot
// feed each other. It holds no state: it is safe for concurrent use, the
// hash each caller passes excepted.
type sealer struct {
	macKey []byte
	aead   cipher.AEAD
}

func newSealer(secret []byte, prefix string) (*sealer, error) {
	macKey, err := hkdf.Key(sha256.New, secret, nil, "chatbridge cluster MAC, prefix "+prefix, 32)
	if err != nil {
		return nil, fmt.Errorf("derive MAC key: %w", err)
	}
	encKey, err := hkdf.Key(sha256.New, secret, nil, "chatbridge cluster private text, prefix "+prefix, 32)
	if err != nil {
		return nil, fmt.Errorf("derive encryption key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("private text cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("private text cipher: %w", err)
	}
	return &sealer{macKey: macKey, aead: aead}, nil
}

// newHash returns a MAC hash for seal and open. A goroutine that handles
// many messages keeps one and passes it each time; others pass nil.
func (s *sealer) newHash() hash.Hash { return hmac.New(sha256.New, s.macKey) }

// sum computes the MAC of payload for purpose and subject into out.
func (s *sealer) sum(h hash.Hash, purpose, subject string, payload []byte, out *[sha256.Size]byte) {
	if h == nil {
		h = s.newHash()
	}
	h.Reset()
	// The purpose and the subject are names (no NUL in them), so the
	// NULs keep every field apart.
	var head [128]byte
	b := append(head[:0], purpose...)
	b = append(b, 0)
	b = append(b, subject...)
	b = append(b, 0)
	h.Write(b)
	h.Write(payload)
	h.Sum(out[:0])
}

// seal returns payload as a sealed message for purpose and subject.
func (s *sealer) seal(h hash.Hash, purpose, subject string, payload []byte) []byte {
	var mac [sha256.Size]byte
	s.sum(h, purpose, subject, payload, &mac)
	out := make([]byte, sealedMin, sealedMin+len(payload))
	base64.RawURLEncoding.Encode(out, mac[:])
	out[macLen] = '.'
	return append(out, payload...)
}

// open returns the payload of msg, a slice of it, if its MAC is valid for
// purpose and subject, and errUnverified if not.
func (s *sealer) open(h hash.Hash, purpose, subject string, msg []byte) ([]byte, error) {
	if len(msg) < sealedMin || msg[macLen] != '.' {
		return nil, errUnverified
	}
	var got, want [sha256.Size]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(got[:], msg[:macLen]); err != nil || n != len(got) {
		return nil, errUnverified
	}
	payload := msg[sealedMin:]
	s.sum(h, purpose, subject, payload, &want)
	if !hmac.Equal(got[:], want[:]) {
		return nil, errUnverified
	}
	return payload, nil
}

// nonceLen is the length of a private message's nonce: the AES-GCM nonce
// of its text, and what binds the answer to the request.
const nonceLen = 12

// newNonce returns a random nonce. Random 96-bit nonces are safe with one
// key for far more messages than a chat sends (2^32).
func newNonce() [nonceLen]byte {
	var n [nonceLen]byte
	rand.Read(n[:])
	return n
}

// hide encrypts a private message's text.
func (s *sealer) hide(nonce [nonceLen]byte, text string) []byte {
	return s.aead.Seal(nil, nonce[:], []byte(text), nil)
}

// reveal decrypts what hide made.
func (s *sealer) reveal(nonce [nonceLen]byte, sealed []byte) (string, error) {
	text, err := s.aead.Open(nil, nonce[:], sealed, nil)
	if err != nil {
		return "", errUnverified
	}
	return string(text), nil
}
