package session

import (
	"encoding/base64"
	"encoding/json"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
)

// opened is a decrypted cookie, as cached.
type opened struct {
	sealed
	kr      *keyring.Keyring
	expires time.Time
}

// issuedNano is when the cookie was issued, in Unix nanoseconds; for a
// cookie sealed before that was recorded, the start of its second (so a
// revocation within that second refuses it: fail closed).
func (o *opened) issuedNano() int64 {
	if o.IssuedAtNano != 0 {
		return o.IssuedAtNano
	}
	return o.IssuedAt * int64(time.Second)
}

type cookieKey struct{ name, value string }

// budget counts what one request's cookies of one name cost (see
// MaxValuesPerName).
type budget struct{ looked, opened int }

func (b *budget) spent() bool { return b.looked >= MaxValuesPerName }

// openAll yields each of r's cookies called name that opens (see open),
// in the order the browser sent them, within one budget. The pages use
// it; Check, on the hot path, walks the cookies itself.
func (j *Jar) openAll(r *http.Request, kr *keyring.Keyring, name string, now time.Time) iter.Seq[*opened] {
	return func(yield func(*opened) bool) {
		var b budget
		c := cookieCursor{lines: r.Header["Cookie"]}
		for !b.spent() {
			part, ok := c.next()
			if !ok {
				return
			}
			v, ok := cookiePart(part, name)
			if !ok {
				continue
			}
			if o := j.open(kr, name, v, now, &b); o != nil && !yield(o) {
				return
			}
		}
	}
}

// open opens one value of a cookie called name, paying from b, the budget
// of the request's cookies of that name. It answers from the cache when
// the same value was opened with the same keyring (a lookup); a value that
// does not name a key of kr costs nothing more; only the others are
// decrypted, while b lasts. Nil when the cookie is forged, made with a key
// no longer listed, expired, or past the budget.
func (j *Jar) open(kr *keyring.Keyring, name, value string, now time.Time, b *budget) *opened {
	if kr == nil || value == "" || len(value) > MaxValueLen || b.spent() {
		return nil
	}
	b.looked++
	k := cookieKey{name, value}
	if o, ok := j.opened.Get(k); ok && o.kr == kr {
		if now.Before(o.expires) {
			return o
		}
		return nil
	}
	if b.opened >= MaxOpensPerName || !sealedByKeyOf(kr, value) {
		return nil
	}
	b.opened++
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil
	}
	plain, err := kr.Open(keyring.PurposeCookie, raw, []byte(name))
	if err != nil {
		return nil
	}
	o := &opened{kr: kr}
	if err := json.Unmarshal(plain, &o.sealed); err != nil || o.Version != sessionVersion || o.User == "" {
		return nil
	}
	for i := range o.Factors {
		f := &o.Factors[i]
		f.claim = f.Multifactor
		if f.Method != "" && f.Multifactor != "" {
			f.claim = f.Multifactor + "+" + f.Method
		}
	}
	o.expires = time.Unix(o.Expiry, 0)
	if !now.Before(o.expires) {
		return nil
	}
	j.opened.Add(cookieKey{name, strings.Clone(value)}, o)
	return o
}

// sealedByKeyOf says, decoding only the start of value (the key id's
// length byte and the id) and allocating nothing, whether value names a
// key of kr (see keyring.KnowsKeyOf).
func sealedByKeyOf(kr *keyring.Keyring, value string) bool {
	// Ids are 8 bytes: with their length byte, 12 characters. (head is
	// longer than the 9 bytes they decode to: Decode then takes its fast
	// path.)
	var src [12]byte
	var head [12]byte
	n, err := base64.RawURLEncoding.Decode(head[:], src[:copy(src[:], value)])
	if err != nil || n == 0 {
		return false
	}
	if idLen := int(head[0]); 1+idLen > 9 {
		return sealedByLongKeyOf(kr, value, idLen)
	}
	return kr.KnowsKeyOf(keyring.PurposeCookie, head[:n])
}

// sealedByLongKeyOf is sealedByKeyOf for an id of idLen bytes, up to 255.
func sealedByLongKeyOf(kr *keyring.Keyring, value string, idLen int) bool {
	var src [344]byte
	var head [256]byte
	m := base64.RawURLEncoding.EncodedLen(1 + idLen)
	if len(value) < m {
		return false
	}
	n, err := base64.RawURLEncoding.Decode(head[:], src[:copy(src[:m], value)])
	if err != nil {
		return false
	}
	return kr.KnowsKeyOf(keyring.PurposeCookie, head[:n])
}
