package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reins-dev/reins/remediation"
)

// Defaults of NATSOptions.
const (
	DefaultStream          = "REINS_AUDIT"
	DefaultSubjectPrefix   = "reins.audit"
	DefaultDuplicateWindow = 24 * time.Hour
)

// NATSOptions configure the JetStream sink.
type NATSOptions struct {
	// URL is the NATS server URL (several may be given, comma-separated). Required.
	URL string
	// Stream is the JetStream stream. Default DefaultStream. It is created
	// (file storage, deny delete and purge) when it does not exist.
	Stream string
	// SubjectPrefix: a remediation's records go to <SubjectPrefix>.<SubjectToken(id)>.
	// Default DefaultSubjectPrefix.
	SubjectPrefix string
	// DuplicateWindow is the stream's deduplication window when it is
	// created here. Default DefaultDuplicateWindow.
	DuplicateWindow time.Duration
	// CredentialsFile is a NATS .creds file. Default: none.
	CredentialsFile string
	// ConnectTimeout bounds the first connection. Default 10s.
	ConnectTimeout time.Duration
	// Name is the connection's name as the server shows it. Default "reins".
	Name string
	// Logger receives warnings (a stream whose window is shorter, reconnects).
	// Default slog.Default().
	Logger *slog.Logger
}

func (o NATSOptions) withDefaults() NATSOptions {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = DefaultSubjectPrefix
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = DefaultDuplicateWindow
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.Name == "" {
		o.Name = "reins"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// NATS is the JetStream sink and reader.
type NATS struct {
	opts   NATSOptions
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
}

// OpenNATS connects and makes sure the stream exists and takes the prefix's subjects.
func OpenNATS(ctx context.Context, opts NATSOptions) (*NATS, error) {
	opts = opts.withDefaults()
	if opts.URL == "" {
		return nil, errors.New("audit nats: no URL")
	}
	log := opts.Logger
	connOpts := []nats.Option{
		nats.Name(opts.Name),
		nats.Timeout(opts.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("audit nats: disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("audit nats: reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	if opts.CredentialsFile != "" {
		connOpts = append(connOpts, nats.UserCredentials(opts.CredentialsFile))
	}
	nc, err := nats.Connect(opts.URL, connOpts...)
	if err != nil {
		return nil, fmt.Errorf("audit nats: connect to %s: %w", redactURL(opts.URL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("audit nats: %w", err)
	}
	n := &NATS{opts: opts, nc: nc, js: js}
	if err := n.ensureStream(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return n, nil
}

func (n *NATS) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.opts.ConnectTimeout)
	defer cancel()
	want := n.opts.SubjectPrefix + ".>"
	s, err := n.js.Stream(ctx, n.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = n.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        n.opts.Stream,
			Description: "reins audit records (CloudEvents, one hash chain per remediation)",
			Subjects:    []string{want},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  n.opts.DuplicateWindow,
			DenyDelete:  true,
			DenyPurge:   true,
			AllowDirect: true,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = n.js.Stream(ctx, n.opts.Stream)
		}
	}
	if err != nil {
		return fmt.Errorf("audit nats: stream %s: %w", n.opts.Stream, err)
	}
	cfg := s.CachedInfo().Config
	covered := false
	for _, subj := range cfg.Subjects {
		covered = covered || subj == want || subj == ">" || subj == n.opts.SubjectPrefix+".*"
	}
	if !covered {
		return fmt.Errorf("audit nats: stream %s takes subjects %v, not %s: add it, or set the audit subject prefix", n.opts.Stream, cfg.Subjects, want)
	}
	if cfg.Duplicates < n.opts.DuplicateWindow {
		n.opts.Logger.Warn("audit nats: the stream's duplicate window is shorter than configured; retries after it are still deduplicated by the subject's last record",
			"stream", n.opts.Stream, "window", cfg.Duplicates, "configured", n.opts.DuplicateWindow)
	}
	n.stream = s
	return nil
}

// Name is "nats".
func (n *NATS) Name() string { return "nats" }

// Close drains the connection.
func (n *NATS) Close() error {
	if err := n.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("audit nats: drain: %w", err)
	}
	return nil
}

// Subject is the subject of the records of one run of a remediation:
// <prefix>.<remediation>.<run>.
func (n *NATS) Subject(remediationID, runID string) string {
	return n.opts.SubjectPrefix + "." + SubjectToken(remediationID) + "." + SubjectToken(runID)
}

// SubjectToken turns a remediation ID into one NATS subject token: letters,
// digits and '-' stay, every other byte becomes _XX (its hex), so that
// different IDs never share a subject.
func SubjectToken(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02X", c)
		}
	}
	return b.String()
}

// Store publishes rec unless the subject already has it. It reports whether
// the record was already there.
func (n *NATS) Store(ctx context.Context, rec remediation.AuditRecord, raw []byte) (bool, error) {
	subj := n.Subject(rec.Subject, rec.RunID)
	var expect uint64
	last, err := n.stream.GetLastMsgForSubject(ctx, subj)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return false, fmt.Errorf("audit nats: read the last record of %s: %w", subj, err)
	default:
		expect = last.Sequence
		if prev, perr := remediation.ParseAuditRecord(last.Data); perr == nil {
			switch {
			case prev.ID == rec.ID:
				return true, nil
			case prev.Seq >= rec.Seq:
				// A later record is there: this one was delivered by an earlier
				// attempt if the chain holds it at its place.
				return n.holds(ctx, subj, rec)
			}
		}
	}
	msg := &nats.Msg{Subject: subj, Data: raw, Header: nats.Header{}}
	msg.Header.Set("Content-Type", remediation.AuditMediaType)
	ack, err := n.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(rec.ID),
		jetstream.WithExpectStream(n.opts.Stream),
		jetstream.WithExpectLastSequencePerSubject(expect))
	if err != nil {
		return false, fmt.Errorf("audit nats: publish %s to %s: %w", rec.Label(), subj, err)
	}
	return ack.Duplicate, nil
}

// holds reports whether subj's chain has rec at its place; another record
// there is a conflict.
func (n *NATS) holds(ctx context.Context, subj string, rec remediation.AuditRecord) (bool, error) {
	raws, err := n.readSubject(ctx, subj)
	if err != nil {
		return false, err
	}
	for _, raw := range raws {
		got, err := remediation.ParseAuditRecord(raw)
		if err == nil && got.Seq == rec.Seq {
			if got.ID == rec.ID {
				return true, nil
			}
			return false, fmt.Errorf("audit nats: %s already holds another record at #%d (id %s); not publishing %s", subj, rec.Seq, got.ID, rec.Label())
		}
	}
	return false, fmt.Errorf("audit nats: %s has later records but not %s; the chain has a gap", subj, rec.Label())
}

// Read returns the records of every run of remediation id, in stream order.
func (n *NATS) Read(ctx context.Context, id string) ([][]byte, error) {
	return n.readSubject(ctx, n.opts.SubjectPrefix+"."+SubjectToken(id)+".*")
}

func (n *NATS) readSubject(ctx context.Context, subj string) ([][]byte, error) {
	var out [][]byte
	for seq := uint64(1); ; {
		m, err := n.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("audit nats: read %s from stream %s: %w", subj, n.opts.Stream, err)
		}
		out = append(out, m.Data)
		seq = m.Sequence + 1
	}
}

// redactURL drops the user info of NATS URLs, for messages.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				parts[i] = u[:scheme+3] + "REDACTED@" + u[at+1:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// TooLarge reports whether a sink refused a record for its size, which no
// retry changes: the NATS server's max_payload, or the stream's
// max_msg_size.
func TooLarge(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum)
}
