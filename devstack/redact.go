package devstack

import (
	"bytes"
	"io"
	"sync"
)

// redactWriter copies lines to w with every secret replaced by "[redacted]",
// and the rest of any line holding one of the linePrefixes dropped. It works
// on whole lines, so a secret split across writes is still caught; Close
// writes a last unterminated line.
type redactWriter struct {
	w            io.Writer
	secrets      [][]byte
	linePrefixes [][]byte

	mu  sync.Mutex
	buf []byte
}

var _ io.WriteCloser = (*redactWriter)(nil)

func newRedactWriter(w io.Writer, secrets, linePrefixes []string) *redactWriter {
	r := &redactWriter{w: w}
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, []byte(s))
		}
	}
	for _, p := range linePrefixes {
		r.linePrefixes = append(r.linePrefixes, []byte(p))
	}
	return r
}

func (r *redactWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			break
		}
		if err := r.writeLine(r.buf[:i+1]); err != nil {
			return len(p), err
		}
		r.buf = r.buf[i+1:]
	}
	// A runaway line without newlines is written out in pieces; a secret
	// straddling a piece boundary would escape, so keep a secret's length.
	if keep := r.longestSecret(); len(r.buf) > 64<<10+keep {
		cut := len(r.buf) - keep
		if err := r.writeLine(r.buf[:cut]); err != nil {
			return len(p), err
		}
		r.buf = r.buf[cut:]
	}
	return len(p), nil
}

// Close writes what is left of the last line.
func (r *redactWriter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == 0 {
		return nil
	}
	err := r.writeLine(r.buf)
	r.buf = nil
	return err
}

func (r *redactWriter) writeLine(line []byte) error {
	out := line
	for _, s := range r.secrets {
		out = bytes.ReplaceAll(out, s, []byte("[redacted]"))
	}
	for _, prefix := range r.linePrefixes {
		if i := bytes.Index(out, prefix); i >= 0 {
			out = append(append(out[:i+len(prefix):i+len(prefix)], " [redacted]"...), '\n')
		}
	}
	_, err := r.w.Write(out)
	return err
}

func (r *redactWriter) longestSecret() int {
	n := 0
	for _, s := range r.secrets {
		n = max(n, len(s))
	}
	return n
}
