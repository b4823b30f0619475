// Package geoip answers `request.geo` from MaxMind-format databases
// (GeoLite2/GeoIP2 Country, ASN, City, or any database with the same
// fields), reloaded when their files change.
package geoip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// DefaultReloadInterval is how often Watch looks at the files.
const DefaultReloadInterval = 30 * time.Second

// record is what a lookup reads of a MaxMind record: the country of the
// Country and City databases, the network of the ASN database.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	ASN uint32 `maxminddb:"autonomous_system_number"`
}

// DB is one or more databases (a Country and an ASN database, say): a
// lookup reads the country from the first that has one and the ASN from
// the first that has one.
type DB struct {
	paths []string
	log   *slog.Logger
	// set is the databases in force, swapped whole by a reload; a lookup
	// reads it once. A replaced reader is not closed: lookups may still
	// use it, and the library unmaps it when it is no longer reachable.
	set atomic.Pointer[readerSet]
	mu  sync.Mutex // serialises reloads
}

type readerSet struct {
	readers []*maxminddb.Reader
	stamps  []fileStamp
}

// fileStamp is what tells that a file changed: its size, modification
// time and identity (a new file renamed over it, a Kubernetes volume's
// symlink swap).
type fileStamp struct {
	size    int64
	modTime time.Time
	info    os.FileInfo
}

func (s fileStamp) same(o fileStamp) bool {
	return s.size == o.size && s.modTime.Equal(o.modTime) && os.SameFile(s.info, o.info)
}

// ParsePaths reads --geoip-db: comma-separated file names.
func ParsePaths(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Open opens the databases at paths. Every one must open: a database
// named but unreadable at start is a configuration error.
func Open(paths []string, log *slog.Logger) (*DB, error) {
	if len(paths) == 0 {
		return nil, errors.New("no GeoIP database named")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DB{paths: paths, log: log}
	set, err := d.open()
	if err != nil {
		return nil, err
	}
	d.set.Store(set)
	return d, nil
}

func (d *DB) open() (*readerSet, error) {
	set := &readerSet{}
	for _, p := range d.paths {
		st, err := stamp(p)
		if err != nil {
			return nil, fmt.Errorf("GeoIP database %s: %w", p, err)
		}
		r, err := maxminddb.Open(p)
		if err != nil {
			return nil, fmt.Errorf("GeoIP database %s: %w", p, err)
		}
		set.readers = append(set.readers, r)
		set.stamps = append(set.stamps, st)
	}
	return set, nil
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime(), info: fi}, nil
}

// Lookup returns the country and ASN of the address ip (request.ip's
// text); zero values when the address does not parse or no database knows
// it. A record that does not decode counts as unknown.
func (d *DB) Lookup(ip string) policy.Geo {
	var g policy.Geo
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return g
	}
	a = a.Unmap().WithZone("")
	for _, r := range d.set.Load().readers {
		var rec record
		if err := r.Lookup(a).Decode(&rec); err != nil {
			continue
		}
		if g.Country == "" {
			g.Country = strings.ToUpper(rec.Country.ISOCode)
		}
		if g.ASN == 0 {
			g.ASN = int64(rec.ASN)
		}
		if g.Country != "" && g.ASN != 0 {
			break
		}
	}
	return g
}

// Reload opens the databases again when one of their files changed, and
// says whether it did. A database that does not open keeps the ones in
// force (the error says why), so a half-copied file never empties
// request.geo; the next change is tried again.
func (d *DB) Reload() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.set.Load()
	changed := false
	for i, p := range d.paths {
		st, err := stamp(p)
		if err != nil {
			return false, fmt.Errorf("GeoIP database %s: %w (the database loaded before stays in force)", p, err)
		}
		if !st.same(cur.stamps[i]) {
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	set, err := d.open()
	if err != nil {
		return false, fmt.Errorf("%w (the database loaded before stays in force)", err)
	}
	d.set.Store(set)
	return true, nil
}

// Watch reloads the databases when their files change, checking every
// interval, until ctx ends.
func (d *DB) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reloaded, err := d.Reload()
		switch {
		case err != nil:
			if err.Error() != lastErr {
				d.log.Error("GeoIP database not reloaded", "error", err)
			}
			lastErr = err.Error()
		case reloaded:
			lastErr = ""
			d.log.Info("GeoIP database reloaded", "paths", strings.Join(d.paths, ","))
		}
	}
}

// Paths are the database files.
func (d *DB) Paths() []string { return d.paths }
