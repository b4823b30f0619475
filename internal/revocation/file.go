package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileName is the file, in the standalone server's --data-dir, that holds
// the revocations: a JSON object of user id to Unix nanoseconds.
const FileName = "revocations.json"

// pollInterval is how often a replica looks at the file's size and time.
const pollInterval = time.Second

// FileStore keeps revocations in one JSON file, for the standalone server
// and `mfa-operator users` next to it. Writers take an exclusive lock on a
// lock file and replace the file by renaming a new one over it, so readers
// never see half a file; readers notice a change by its modification time
// and size, at most pollInterval later.
type FileStore struct {
	Path string
	Log  *slog.Logger
	Now  func() time.Time
}

// NewFileStore returns the store of the data directory dir.
func NewFileStore(dir string, log *slog.Logger) *FileStore {
	return &FileStore{Path: filepath.Join(dir, FileName), Log: log}
}

func (s *FileStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Revoke implements the writer side, as ClusterStore.Revoke.
func (s *FileStore) Revoke(ctx context.Context, user string, at time.Time) error {
	if user == "" {
		return errors.New("revoking: empty user id")
	}
	return s.locked(func() error {
		entries, err := s.read()
		if err != nil {
			return err
		}
		entries[user] = max(entries[user], at.UnixNano())
		prune(entries, s.now())
		return writeJSON(s.Path, entries)
	})
}

// locked runs fn holding the exclusive lock of the store's files.
func (s *FileStore) locked(fn func() error) error {
	lock, err := os.OpenFile(s.Path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("locking %s: %w", s.Path, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", s.Path, err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	return fn()
}

// writeJSON replaces the file at path with v, by renaming a new file over
// it.
func writeJSON(path string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// read returns the file's entries; none when there is no file.
func (s *FileStore) read() (map[string]int64, error) {
	raw, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.Path, err)
	}
	entries := map[string]int64{}
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("reading %s: not a JSON object of user ids to Unix nanoseconds: %w", s.Path, err)
	}
	return entries, nil
}

// Load fills l from the files once.
func (s *FileStore) Load(l *List) error {
	entries, err := s.read()
	if err != nil {
		return err
	}
	browsers, err := s.readBrowsers()
	if err != nil {
		return err
	}
	l.ReplaceAllBrowsers(map[string]map[string]Browser{BrowsersFileName: browsers})
	l.ReplaceAll(map[string]map[string]int64{FileName: entries})
	return nil
}

// fileSeen is what Run last saw of a file.
type fileSeen struct {
	mod  time.Time
	size int64
	ok   bool
}

// changed looks at the file at path again and says whether it changed.
func (f *fileSeen) changed(path string) bool {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		changed := f.ok
		f.ok = false
		return changed
	case err == nil:
		changed := !f.ok || !fi.ModTime().Equal(f.mod) || fi.Size() != f.size
		f.mod, f.size, f.ok = fi.ModTime(), fi.Size(), true
		return changed
	}
	return false
}

// Run fills l from the files and reloads them whenever one changes. A file
// that cannot be read keeps what is in force (and, before the first
// read, every cookie refused) and is logged.
func (s *FileStore) Run(ctx context.Context, l *List) {
	var seen, seenBrowsers fileSeen
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for first := true; ; first = false {
		changed := seen.changed(s.Path)
		changed = seenBrowsers.changed(s.browsersPath()) || changed
		if first || changed {
			if err := s.Load(l); err != nil {
				s.Log.Error("revocations not loaded", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
