package workers

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/reins-dev/reins/codec"
)

// Environment variables of the codec and the gateway.
const (
	EnvCodecKeyFile = "REINS_CODEC_KEY_FILE"
	EnvGatewayToken = "REINS_GATEWAY_TOKEN"
)

// CodecConfig turns on the payload codec: every payload (inputs, results,
// signals, queries, memos, failures' messages and details) is encrypted with
// AES-256-GCM before it reaches Temporal. Every process that talks to
// Temporal (workers, the CLI, the gateway) needs the same settings. Off when
// neither KeyFile nor TransitKey is set.
type CodecConfig struct {
	// TransitKey is a Vault transit key (with the vault section's client):
	// payloads are sealed with data keys it wraps. E.g. "reins-codec".
	TransitKey string `json:"transit_key"`
	// TransitMount is the transit engine's path. Default "transit".
	TransitMount string `json:"transit_mount"`
	// DataKeyTTL is how long one transit data key is used. Default 1h.
	DataKeyTTL Duration `json:"data_key_ttl"`
	// KeyFile holds a key (base64 of 32 random bytes; `reins codec keygen`)
	// used when TransitKey is not set. $REINS_CODEC_KEY_FILE.
	KeyFile string `json:"key_file"`
	// OldKeyFiles are earlier key files, kept to decrypt older payloads.
	OldKeyFiles []string `json:"old_key_files"`
}

// Enabled reports whether payloads are encrypted.
func (c CodecConfig) Enabled() bool { return c.TransitKey != "" || c.KeyFile != "" }

// GatewayConfig configures `reins gateway`.
type GatewayConfig struct {
	// Listen is the address served. Default "127.0.0.1:8081".
	Listen string `json:"listen"`
	// TokenFile holds the token that authenticates the codec endpoints
	// (at least 16 characters). $REINS_GATEWAY_TOKEN overrides it.
	TokenFile string `json:"token_file"`
	// CORSOrigins may call the codec endpoints from a browser. Default: the
	// origin of temporal_ui.
	CORSOrigins []string `json:"cors_origins"`
	// TLS serves HTTPS and verifies client certificates (see GatewayTLS). Default: plain HTTP.
	TLS GatewayTLS `json:"tls"`
}

// GatewayToken reads the gateway's token: $REINS_GATEWAY_TOKEN, else the file.
func (g GatewayConfig) GatewayToken() (string, error) {
	if t := os.Getenv(EnvGatewayToken); t != "" {
		return t, nil
	}
	if g.TokenFile == "" {
		return "", errors.New("config gateway.token_file is not set (or set " + EnvGatewayToken + "): the codec endpoints are never served unauthenticated")
	}
	b, err := os.ReadFile(g.TokenFile)
	if err != nil {
		return "", fmt.Errorf("config gateway.token_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// PayloadCodec builds the codec, or returns nil when it is off.
func (c Config) PayloadCodec(logger *slog.Logger) (*codec.Codec, error) {
	cc := c.Codec
	if !cc.Enabled() {
		return nil, nil
	}
	var ring codec.Ring
	if cc.TransitKey != "" {
		vc, err := c.Vault.NewVaultClient(logger)
		if err != nil {
			return nil, fmt.Errorf("payload codec with Vault transit key %s: %w", cc.TransitKey, err)
		}
		ring = append(ring, &codec.TransitKeys{Vault: vc, Mount: cc.TransitMount, KeyName: cc.TransitKey, DataKeyTTL: time.Duration(cc.DataKeyTTL)})
	}
	if cc.KeyFile != "" {
		fk, err := codec.LoadFileKeys(cc.KeyFile, cc.OldKeyFiles...)
		if err != nil {
			return nil, err
		}
		ring = append(ring, fk)
	}
	return &codec.Codec{Keys: ring}, nil
}

// TemporalOptions sets opts' data and failure converters to the codec's when
// it is on: failures' messages and stack traces are then encrypted too.
func (c Config) TemporalOptions(opts *sdkclient.Options, logger *slog.Logger) error {
	pc, err := c.PayloadCodec(logger)
	if err != nil || pc == nil {
		return err
	}
	dc := pc.DataConverter()
	opts.DataConverter = dc
	opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: dc, EncodeCommonAttributes: true})
	return nil
}

func (c Config) validateCodec() []error {
	var errs []error
	if c.Codec.DataKeyTTL < 0 {
		errs = append(errs, errors.New("config codec.data_key_ttl: must be positive, e.g. \"1h\""))
	}
	if len(c.Codec.OldKeyFiles) > 0 && c.Codec.KeyFile == "" && c.Codec.TransitKey == "" {
		errs = append(errs, errors.New("config codec.old_key_files: set codec.key_file or codec.transit_key too (the key to encrypt with)"))
	}
	return errs
}
