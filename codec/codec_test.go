package codec

import (
	"bytes"
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

func keyFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "codec.key")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileKeys(t testing.TB, current string, old ...string) *FileKeys {
	t.Helper()
	k, err := LoadFileKeys(current, old...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func payloads(t testing.TB, values ...any) []*commonpb.Payload {
	t.Helper()
	ps, err := converter.GetDefaultDataConverter().ToPayloads(values...)
	if err != nil {
		t.Fatal(err)
	}
	return ps.Payloads
}

func TestRoundTripAndNoPlaintext(t *testing.T) {
	c := &Codec{Keys: fileKeys(t, keyFile(t))}
	in := payloads(t, map[string]string{"explanation": "checkout 5xx since v2.3.1"}, "plain string", nil, 42)
	enc, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range enc {
		if string(p.Metadata[converter.MetadataEncoding]) != Encoding || !strings.HasPrefix(string(p.Metadata[MetadataKeyID]), "file:") {
			t.Errorf("payload %d metadata %v", i, p.Metadata)
		}
		if bytes.Contains(p.Data, []byte("checkout")) || bytes.Contains(p.Data, []byte("plain string")) || bytes.Contains(p.Data, []byte("json/plain")) {
			t.Errorf("payload %d carries plaintext", i)
		}
	}
	dec, err := c.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if !proto.Equal(in[i], dec[i]) {
			t.Errorf("payload %d: %v, want %v", i, dec[i], in[i])
		}
	}
	// The same value twice encrypts differently (random nonce).
	again, _ := c.Encode(in[:1])
	if bytes.Equal(again[0].Data, enc[0].Data) {
		t.Error("two encryptions are equal")
	}
	// A plain payload passes Decode unchanged.
	plain := payloads(t, "old history")
	if out, err := c.Decode(plain); err != nil || !proto.Equal(out[0], plain[0]) {
		t.Errorf("plain payload: %v %v", out, err)
	}
}

func TestTamperingAndWrongKeys(t *testing.T) {
	a, b := keyFile(t), keyFile(t)
	c := &Codec{Keys: fileKeys(t, a)}
	enc, err := c.Encode(payloads(t, "secret plan"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := proto.Clone(enc[0]).(*commonpb.Payload)
	flipped.Data[len(flipped.Data)-1] ^= 1
	if _, err := c.Decode([]*commonpb.Payload{flipped}); err == nil {
		t.Error("a flipped bit decrypted")
	}
	// The key id is authenticated: naming another known key fails.
	relabelled := proto.Clone(enc[0]).(*commonpb.Payload)
	both := fileKeys(t, b, a)
	relabelled.Metadata[MetadataKeyID] = []byte(both.currentID)
	if _, err := (&Codec{Keys: both}).Decode([]*commonpb.Payload{relabelled}); err == nil {
		t.Error("a relabelled payload decrypted")
	}
	if _, err := (&Codec{Keys: fileKeys(t, b)}).Decode(enc); err == nil {
		t.Error("decrypted without the key")
	}
	short := &commonpb.Payload{Metadata: enc[0].Metadata, Data: []byte{1, 2, 3}}
	if _, err := c.Decode([]*commonpb.Payload{short}); err == nil {
		t.Error("a truncated payload decrypted")
	}
}

// Rotation: a new key file becomes current; payloads sealed with the old
// one still decrypt while it is kept among the old keys.
func TestRotation(t *testing.T) {
	oldKey, newKey := keyFile(t), keyFile(t)
	enc, err := (&Codec{Keys: fileKeys(t, oldKey)}).Encode(payloads(t, "before rotation"))
	if err != nil {
		t.Fatal(err)
	}
	rotated := &Codec{Keys: fileKeys(t, newKey, oldKey)}
	fresh, err := rotated.Encode(payloads(t, "after rotation"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(fresh[0].Metadata[MetadataKeyID], enc[0].Metadata[MetadataKeyID]) {
		t.Fatal("rotation did not change the key id")
	}
	if _, err := rotated.Decode(append(enc, fresh...)); err != nil {
		t.Fatal(err)
	}
}

// fakeTransit stands in for transit's datakey and decrypt endpoints (the
// integration tests use the real engine).
type fakeTransit struct {
	datakeys   atomic.Int32
	decryption atomic.Int32
}

func (f *fakeTransit) Write(_ context.Context, path string, data map[string]any) (*vaultapi.Secret, error) {
	switch {
	case strings.HasPrefix(path, "transit/datakey/plaintext/"):
		f.datakeys.Add(1)
		key := bytes.Repeat([]byte{byte(f.datakeys.Load())}, KeySize)
		return &vaultapi.Secret{Data: map[string]any{
			"plaintext":  base64.StdEncoding.EncodeToString(key),
			"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(key),
		}}, nil
	case strings.HasPrefix(path, "transit/decrypt/"):
		f.decryption.Add(1)
		wrapped := strings.TrimPrefix(data["ciphertext"].(string), "vault:v1:")
		return &vaultapi.Secret{Data: map[string]any{"plaintext": wrapped}}, nil
	}
	return nil, nil
}

func TestTransitDataKeysAreCached(t *testing.T) {
	f := &fakeTransit{}
	c := &Codec{Keys: &TransitKeys{Vault: f, KeyName: "reins-codec"}}
	for range 10 {
		if _, err := c.Encode(payloads(t, "x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.datakeys.Load(); n != 1 {
		t.Errorf("%d data keys asked for 10 encodes, want 1 (cached)", n)
	}
	enc, _ := c.Encode(payloads(t, "y"))
	if !strings.HasPrefix(string(enc[0].Metadata[MetadataKeyID]), "transit:vault:v1:") {
		t.Errorf("key id %q", enc[0].Metadata[MetadataKeyID])
	}
	// Another process (the gateway) unwraps the key once, then caches it.
	other := &Codec{Keys: &TransitKeys{Vault: f, KeyName: "reins-codec"}}
	for range 3 {
		if _, err := other.Decode(enc); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.decryption.Load(); n != 1 {
		t.Errorf("%d unwraps for 3 decodes, want 1", n)
	}
	// A ring of a key file and transit decodes both kinds.
	fk := fileKeys(t, keyFile(t))
	fromFile, _ := (&Codec{Keys: fk}).Encode(payloads(t, "z"))
	ring := &Codec{Keys: Ring{&TransitKeys{Vault: f, KeyName: "reins-codec"}, fk}}
	if _, err := ring.Decode(append(enc, fromFile...)); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	c := &Codec{Keys: fileKeys(b, keyFile(b))}
	p := payloads(b, strings.Repeat("plan field ", 200))
	b.ReportAllocs()
	for b.Loop() {
		enc, err := c.Encode(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
