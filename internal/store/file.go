package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// enrollmentsBucket holds the records by provider and user;
// legacyBucket the records written before enrolments had a provider, by
// user alone, read only to migrate them.
var (
	enrollmentsBucket = []byte("enrollments.v2")
	legacyBucket      = []byte("enrollments")
)

// fileKey is k's key in enrollmentsBucket. A provider key holds no NUL.
func fileKey(k Key) []byte { return []byte(k.Provider + "\x00" + k.User) }

// FileStore keeps enrolments in one bbolt file, for the standalone server.
// bbolt serializes write transactions and Update runs fn inside one, so an
// Update is atomic without retries. Only one process can open the file.
type FileStore struct {
	db *bolt.DB
}

var _ Store = (*FileStore)(nil)

// NewFileStore opens (or creates) the store at path. It fails after a few
// seconds, naming the path, when another process holds the file.
func NewFileStore(path string) (*FileStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("opening the enrollment store %s: another process holds it; stop it or use another path", path)
		}
		return nil, fmt.Errorf("opening the enrollment store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(legacyBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(enrollmentsBucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initializing the enrollment store %s: %w", path, err)
	}
	return &FileStore{db: db}, nil
}

// Close closes the file; later calls fail with ErrUnavailable.
func (s *FileStore) Close() error { return s.db.Close() }

// Get implements Store.
func (s *FileStore) Get(ctx context.Context, k Key) (*Enrollment, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var e *Enrollment
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		e, err = current(k, tx.Bucket(enrollmentsBucket).Get(fileKey(k)), tx.Bucket(legacyBucket).Get([]byte(k.User)))
		return err
	})
	if err != nil {
		return nil, fileError(err)
	}
	return e, nil
}

// Update implements Store. fn runs inside bbolt's write transaction: it
// must not call the store.
func (s *FileStore) Update(ctx context.Context, k Key, fn func(e *Enrollment) error) (*Enrollment, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var (
		seen  *Enrollment
		fnErr error
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(enrollmentsBucket)
		// bbolt's value is only valid during the transaction; apply decodes
		// it before anything else happens.
		raw := b.Get(fileKey(k))
		var legacy []byte
		if raw == nil {
			legacy = tx.Bucket(legacyBucket).Get([]byte(k.User))
		}
		wrapped := func(e *Enrollment) error {
			fnErr = fn(e)
			return fnErr
		}
		e, out, changed, err := apply(k, raw, legacy, wrapped)
		seen = e
		if err != nil || !changed {
			return err
		}
		return b.Put(fileKey(k), out)
	})
	if fnErr != nil {
		return seen, fnErr
	}
	if err != nil {
		return seen, fileError(err)
	}
	return seen, nil
}

// fileError marks database-level failures (closed, I/O) as ErrUnavailable;
// a record that does not decode is reported as is: retrying will not help.
func fileError(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
