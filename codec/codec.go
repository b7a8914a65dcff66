// Package codec encrypts Temporal payloads: a converter.PayloadCodec that
// seals every payload with AES-256-GCM under a key from a key file or a data
// key from Vault's transit engine, and names that key in the payload's
// metadata so that keys can rotate while old histories stay readable.
//
// An encrypted payload has metadata encoding "binary/encrypted" and
// "encryption-key-id" = the key's id, and data = nonce (12 bytes) ‖
// AES-256-GCM(key, nonce, the original payload as protobuf, additional data =
// the key id). A payload without that encoding passes Decode unchanged, so a
// codec can be turned on in a namespace that has plain histories.
package codec

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata keys and values of an encrypted payload.
const (
	// Encoding is the metadata "encoding" of an encrypted payload.
	Encoding = "binary/encrypted"
	// MetadataKeyID names the key that sealed the payload.
	MetadataKeyID = "encryption-key-id"
)

// KeySize is the AES-256 key size.
const KeySize = 32

// Keys gives the codec its keys.
type Keys interface {
	// Current returns the key to encrypt with now and its id.
	Current(ctx context.Context) (id string, key []byte, err error)
	// Key returns the key with the given id, for decryption.
	Key(ctx context.Context, id string) ([]byte, error)
}

// Codec is a converter.PayloadCodec that encrypts every payload.
type Codec struct {
	// Keys gives the keys. Required.
	Keys Keys
	// Timeout bounds a key lookup (Vault). Default 10 seconds.
	Timeout time.Duration
}

var _ converter.PayloadCodec = (*Codec)(nil)

// DataConverter is the default data converter with c as its codec.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

func (c *Codec) ctx() (context.Context, context.CancelFunc) {
	t := c.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	return context.WithTimeout(context.Background(), t)
}

// Encode encrypts each payload with the current key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	id, key, err := c.Keys.Current(ctx)
	if err != nil {
		return payloads, fmt.Errorf("payload codec: get the encryption key: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return payloads, err
	}
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("payload codec: marshal payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		_, _ = rand.Read(nonce) // never fails (Go 1.24+ crashes instead)
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(Encoding),
				MetadataKeyID:              []byte(id),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(id)),
		}
	}
	return out, nil
}

// Decode decrypts each encrypted payload; others pass unchanged.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	out := make([]*commonpb.Payload, len(payloads))
	aeads := map[string]cipher.AEAD{}
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		if id == "" {
			return payloads, errors.New("payload codec: an encrypted payload names no key (" + MetadataKeyID + ")")
		}
		aead, ok := aeads[id]
		if !ok {
			key, err := c.Keys.Key(ctx, id)
			if err != nil {
				return payloads, fmt.Errorf("payload codec: key %s: %w", shortID(id), err)
			}
			if aead, err = newAEAD(key); err != nil {
				return payloads, err
			}
			aeads[id] = aead
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return payloads, errors.New("payload codec: encrypted payload too short")
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return payloads, fmt.Errorf("payload codec: decrypt with key %s: %w", shortID(id), err)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return payloads, fmt.Errorf("payload codec: unmarshal decrypted payload: %w", err)
		}
		out[i] = &orig
	}
	return out, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("payload codec: key is %d bytes, want %d (AES-256)", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("payload codec: %w", err)
	}
	return cipher.NewGCM(block)
}

// shortID keeps error messages short: a transit key id is a wrapped key.
func shortID(id string) string {
	if len(id) > 32 {
		return id[:32] + "…"
	}
	return id
}
