package policies

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultBundleFiles lists the files of the embedded default bundle, sorted by
// name.
func DefaultBundleFiles() []string {
	files, err := readEmbedded()
	if err != nil {
		return nil
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	return names
}

// DefaultDigest is the digest of the embedded default bundle.
func DefaultDigest() string {
	files, err := readEmbedded()
	if err != nil {
		return ""
	}
	return bundleDigest(files)
}

// WriteDefaultBundle writes the embedded default bundle (its *.rego files,
// tests included, and data.json) into dir, creating dir if needed, so that
// operators can start their own bundle from it. It never overwrites: if any
// of the files exists already, it writes nothing and says which.
func WriteDefaultBundle(dir string) error {
	if dir == "" {
		return errors.New("write the default policy bundle: no folder given; name the folder to write it into")
	}
	files, err := readEmbedded()
	if err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(dir, f.Name)
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("write the default policy bundle: %s exists already; choose an empty folder or remove the bundle files first", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write the default policy bundle: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write the default policy bundle: create the folder: %w", err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.Name)
		out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("write the default policy bundle: %w", err)
		}
		_, werr := out.Write(f.Data)
		cerr := out.Close()
		if err := errors.Join(werr, cerr); err != nil {
			return fmt.Errorf("write the default policy bundle: write %s: %w", path, err)
		}
	}
	return nil
}
