package devstack

import (
	"context"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestNATSStartsAndStops(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	n, err := StartNATS(ctx, NATSOptions{Dir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if !strings.HasPrefix(n.URL, "nats://127.0.0.1:") {
		t.Errorf("URL %s is not on loopback", n.URL)
	}
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.JetStream(); err != nil {
		t.Fatal(err)
	}

	// A second server on the same port fails at once, naming the cause.
	u, err := url.Parse(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	_, err = StartNATS(ctx, NATSOptions{Dir: t.TempDir(), Port: p, Logger: logger})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second server on port %d: %v", p, err)
	}
	if took := time.Since(started); took > 30*time.Second {
		t.Errorf("the failure took %s", took)
	}
	if _, err := StartNATS(ctx, NATSOptions{}); err == nil || !strings.Contains(err.Error(), "NATSOptions.Dir") {
		t.Errorf("no Dir: %v", err)
	}
}
