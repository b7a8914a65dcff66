package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/reins-dev/reins/remediation"
)

// File is the append-only JSON-lines sink: one record per line.
type File struct {
	path   string
	logger *slog.Logger

	mu sync.Mutex
	f  *os.File
	// indexed is how many bytes of the file ids holds the records of.
	indexed int64
	ids     map[[32]byte]struct{}
	// sync flushes the file to disk: (*os.File).Sync.
	sync func(*os.File) error
}

// OpenFile opens (creating it, and its folder, if needed) the audit file at
// path and indexes the records in it.
func OpenFile(path string, logger *slog.Logger) (*File, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit file: create the folder of %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit file: open %s: %w", path, err)
	}
	a := &File{path: path, logger: logger, f: f, ids: map[[32]byte]struct{}{}, sync: (*os.File).Sync}
	err = a.locked(func() error { return a.catchUp() })
	if err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

// Name is "file".
func (a *File) Name() string { return "file" }

// Path is the file's path.
func (a *File) Path() string { return a.path }

// Close closes the file.
func (a *File) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Close()
}

// Store appends rec's line unless the file already holds the record, then
// fsyncs. It reports whether the record was already there.
func (a *File) Store(_ context.Context, rec remediation.AuditRecord, raw []byte) (bool, error) {
	key, err := idKey(rec.ID)
	if err != nil {
		return false, err
	}
	if bytes.ContainsAny(raw, "\r\n") {
		return false, fmt.Errorf("audit file: %s spans lines; records are single-line JSON", rec.Label())
	}
	present := false
	err = a.locked(func() error {
		if err := a.catchUp(); err != nil {
			return err
		}
		if _, ok := a.ids[key]; ok {
			// It may be the line of an earlier Store whose fsync failed:
			// it counts only once it is on disk.
			if err := a.sync(a.f); err != nil {
				return fmt.Errorf("audit file: fsync %s: %w", a.path, err)
			}
			present = true
			return nil
		}
		line := make([]byte, 0, len(raw)+1)
		line = append(append(line, raw...), '\n')
		if _, err := a.f.Write(line); err != nil {
			return fmt.Errorf("audit file: append %s to %s: %w", rec.Label(), a.path, err)
		}
		if err := a.sync(a.f); err != nil {
			return fmt.Errorf("audit file: fsync %s: %w", a.path, err)
		}
		a.indexed += int64(len(line))
		a.ids[key] = struct{}{}
		return nil
	})
	return present, err
}

// locked runs fn holding the in-process lock and an exclusive flock, so that
// workers on the same host sharing the file never interleave.
func (a *File) locked(fn func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := syscall.Flock(int(a.f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("audit file: lock %s: %w", a.path, err)
	}
	defer func() { _ = syscall.Flock(int(a.f.Fd()), syscall.LOCK_UN) }()
	return fn()
}

// catchUp indexes what was appended since the last look (by other writers,
// or everything on open), and cuts off a torn last line. It holds the flock.
func (a *File) catchUp() error {
	info, err := a.f.Stat()
	if err != nil {
		return fmt.Errorf("audit file: stat %s: %w", a.path, err)
	}
	size := info.Size()
	if size < a.indexed {
		// Replaced or truncated under us (e.g. rotated): index it afresh.
		a.logger.Warn("audit file shrank; indexing it again", "path", a.path, "size", size, "indexed", a.indexed)
		a.indexed, a.ids = 0, map[[32]byte]struct{}{}
	}
	if size == a.indexed {
		return nil
	}
	r := bufio.NewReaderSize(io.NewSectionReader(a.f, a.indexed, size-a.indexed), 64<<10)
	off := a.indexed
	for {
		line, err := r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: keep reading it.
			var more []byte
			more, err = r.ReadSlice('\n')
			line = append(append([]byte(nil), line...), more...)
		}
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				// A torn write: the process died mid-line, before the fsync
				// that makes a delivery count. Its record is delivered again.
				a.logger.Warn("audit file ends in a partial line; cutting it off", "path", a.path, "offset", off, "bytes", len(line))
				if err := a.f.Truncate(off); err != nil {
					return fmt.Errorf("audit file: cut the partial last line of %s: %w", a.path, err)
				}
			}
			a.indexed = off
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit file: read %s: %w", a.path, err)
		}
		if key, ok := lineID(line); ok {
			a.ids[key] = struct{}{}
		}
		off += int64(len(line))
	}
}

// lineID is the id of a record line, read from its fixed prefix.
func lineID(line []byte) ([32]byte, bool) {
	const prefix = `{"specversion":"1.0","id":"`
	if !bytes.HasPrefix(line, []byte(prefix)) || len(line) < len(prefix)+64 {
		return [32]byte{}, false
	}
	key, err := idKey(string(line[len(prefix) : len(prefix)+64]))
	return key, err == nil
}

func idKey(id string) ([32]byte, error) {
	var key [32]byte
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != len(key) {
		return key, fmt.Errorf("audit: record id %q is not a SHA-256 in hex", id)
	}
	copy(key[:], b)
	return key, nil
}

// ReadFile returns the lines of the audit file at path that belong to
// remediation id, in file order. A line that is not a valid record but
// names the remediation is returned too, so that Verify reports it.
func ReadFile(path, id string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit file: %w", err)
	}
	defer f.Close()
	needle := []byte(`"subject":` + strconv.Quote(id) + `,`)
	var out [][]byte
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimRight(line, "\r\n")
			if rec, perr := remediation.ParseAuditRecord(line); perr == nil {
				if rec.Subject == id {
					out = append(out, line)
				}
			} else if bytes.Contains(line, needle) {
				out = append(out, line)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("audit file: read %s: %w", path, err)
		}
	}
}
