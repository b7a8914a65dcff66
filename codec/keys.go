package codec

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Key id prefixes: the id says which provider can give the key back.
const (
	filePrefix    = "file:"
	transitPrefix = "transit:"
)

// FileKeys are AES-256 keys read from files, each holding the base64 of 32
// random bytes (GenerateKeyFile writes one). A key's id is "file:" and the
// first 16 hex digits of SHA-256("reins-codec" ‖ key), so ids never need
// to be configured. Rotate by making a new file current and keeping the old
// one among the others.
type FileKeys struct {
	currentID string
	keys      map[string][]byte
}

var _ Keys = (*FileKeys)(nil)

// LoadFileKeys reads the current key file and older ones still needed to
// decrypt.
func LoadFileKeys(current string, old ...string) (*FileKeys, error) {
	f := &FileKeys{keys: map[string][]byte{}}
	for i, path := range append([]string{current}, old...) {
		key, err := readKeyFile(path)
		if err != nil {
			return nil, err
		}
		id := FileKeyID(key)
		f.keys[id] = key
		if i == 0 {
			f.currentID = id
		}
	}
	return f, nil
}

// FileKeyID is the id of a file key.
func FileKeyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("reins-codec"), key...))
	return filePrefix + hex.EncodeToString(sum[:8])
}

// Current is the current file's key.
func (f *FileKeys) Current(context.Context) (string, []byte, error) {
	return f.currentID, f.keys[f.currentID], nil
}

// Key returns a loaded key by id.
func (f *FileKeys) Key(_ context.Context, id string) ([]byte, error) {
	k, ok := f.keys[id]
	if !ok {
		return nil, errors.New("no key file holds this key (add the old key file for decryption)")
	}
	return k, nil
}

func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("codec key file: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("codec key file %s: must hold the base64 of %d random bytes (reins codec keygen)", path, KeySize)
	}
	return key, nil
}

// GenerateKeyFile writes a new random key to path (0600), refusing to
// overwrite one.
func GenerateKeyFile(path string) error {
	key := make([]byte, KeySize)
	_, _ = rand.Read(key) // never fails (Go 1.24+ crashes instead)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("codec key file: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("codec key file: %w", err)
	}
	return f.Close()
}

// VaultWriter sends writes to Vault: *vaultclient.Client.
type VaultWriter interface {
	Write(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error)
}

// TransitKeys are data keys from Vault's transit engine (envelope
// encryption): Current asks transit/datakey/plaintext/<key> for a new data
// key and uses it for DataKeyTTL; the key id is "transit:" and the data key
// wrapped by Vault ("vault:v1:…"), so any holder of transit/decrypt/<key>
// can unwrap it, and rotating the transit key does not strand old payloads.
// Unwrapped keys are cached.
type TransitKeys struct {
	// Vault sends the requests. Required.
	Vault VaultWriter
	// Mount is the transit engine's path. Default "transit".
	Mount string
	// KeyName is the transit key's name. Required.
	KeyName string
	// DataKeyTTL is how long one data key encrypts before a new one is
	// asked for. Default 1 hour.
	DataKeyTTL time.Duration
	// CacheSize bounds the unwrapped keys kept for decryption. Default 1024.
	CacheSize int

	mu      sync.Mutex
	current *dataKey
	cache   map[string][]byte
	order   []string
}

var _ Keys = (*TransitKeys)(nil)

type dataKey struct {
	id      string
	key     []byte
	expires time.Time
}

func (t *TransitKeys) mount() string {
	if t.Mount == "" {
		return "transit"
	}
	return strings.Trim(t.Mount, "/")
}

// Current returns the cached data key, or a new one from Vault.
func (t *TransitKeys) Current(ctx context.Context) (string, []byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != nil && time.Now().Before(t.current.expires) {
		return t.current.id, t.current.key, nil
	}
	s, err := t.Vault.Write(ctx, t.mount()+"/datakey/plaintext/"+t.KeyName, map[string]any{"bits": KeySize * 8})
	if err != nil {
		return "", nil, fmt.Errorf("new data key from Vault transit key %s: %w", t.KeyName, err)
	}
	plain, _ := s.Data["plaintext"].(string)
	wrapped, _ := s.Data["ciphertext"].(string)
	key, err := base64.StdEncoding.DecodeString(plain)
	if err != nil || len(key) != KeySize || wrapped == "" {
		return "", nil, fmt.Errorf("new data key from Vault transit key %s: unexpected response", t.KeyName)
	}
	ttl := t.DataKeyTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	id := transitPrefix + wrapped
	t.current = &dataKey{id: id, key: key, expires: time.Now().Add(ttl)}
	t.remember(id, key)
	return id, key, nil
}

// Key unwraps a data key with Vault (cached).
func (t *TransitKeys) Key(ctx context.Context, id string) ([]byte, error) {
	wrapped, ok := strings.CutPrefix(id, transitPrefix)
	if !ok {
		return nil, errors.New("not a transit data key")
	}
	t.mu.Lock()
	if k, ok := t.cache[id]; ok {
		t.mu.Unlock()
		return k, nil
	}
	t.mu.Unlock()
	s, err := t.Vault.Write(ctx, t.mount()+"/decrypt/"+t.KeyName, map[string]any{"ciphertext": wrapped})
	if err != nil {
		return nil, fmt.Errorf("unwrap the data key with Vault transit key %s: %w", t.KeyName, err)
	}
	plain, _ := s.Data["plaintext"].(string)
	key, err := base64.StdEncoding.DecodeString(plain)
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("unwrap the data key with Vault transit key %s: unexpected response", t.KeyName)
	}
	t.mu.Lock()
	t.remember(id, key)
	t.mu.Unlock()
	return key, nil
}

func (t *TransitKeys) remember(id string, key []byte) {
	if t.cache == nil {
		t.cache = map[string][]byte{}
	}
	if _, ok := t.cache[id]; ok {
		return
	}
	size := t.CacheSize
	if size <= 0 {
		size = 1024
	}
	for len(t.order) >= size {
		delete(t.cache, t.order[0])
		t.order = t.order[1:]
	}
	t.cache[id] = key
	t.order = append(t.order, id)
}

// Ring encrypts with its first Keys and decrypts with whichever of them
// knows the key id's kind: a move from a key file to transit (or back)
// keeps every history readable.
type Ring []Keys

var _ Keys = Ring(nil)

// Current is the first member's current key.
func (r Ring) Current(ctx context.Context) (string, []byte, error) {
	if len(r) == 0 {
		return "", nil, errors.New("no codec keys configured")
	}
	return r[0].Current(ctx)
}

// Key asks the member of the id's kind.
func (r Ring) Key(ctx context.Context, id string) ([]byte, error) {
	var errs []error
	for _, k := range r {
		switch k.(type) {
		case *FileKeys:
			if !strings.HasPrefix(id, filePrefix) {
				continue
			}
		case *TransitKeys:
			if !strings.HasPrefix(id, transitPrefix) {
				continue
			}
		}
		key, err := k.Key(ctx, id)
		if err == nil {
			return key, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no configured key source handles this key id")
	}
	return nil, errors.Join(errs...)
}
