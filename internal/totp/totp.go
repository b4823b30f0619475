// Package totp implements time-based one-time passwords (RFC 6238) as
// Google Authenticator and compatible apps use them: secrets, codes,
// otpauth:// URIs and their QR codes, recovery codes, and the Authenticator
// that enrols and verifies users against the enrollment store with a replay
// guard and a lockout.
package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// Params are the settings of a TOTP provider.
type Params struct {
	// Issuer is the account label shown in the authenticator app.
	Issuer string
	// Digits is the length of a code: 6 to 8.
	Digits int
	// Period is the time step: whole seconds, at least one.
	Period time.Duration
	// Algorithm is the HMAC hash.
	Algorithm v1alpha1.TOTPAlgorithm
	// Skew is how many time steps either side of the current one are accepted.
	Skew int
}

// MaxSkew bounds Params.Skew: every accepted step is another chance to guess.
const MaxSkew = 10

// ParamsFrom reads a provider's TOTP settings, with their defaults.
func ParamsFrom(spec *v1alpha1.TOTPSpec) Params {
	return Params{
		Issuer:    spec.GetIssuer(),
		Digits:    spec.GetDigits(),
		Period:    spec.GetPeriod(),
		Algorithm: spec.GetAlgorithm(),
		Skew:      spec.GetSkew(),
	}
}

// Validate says what is wrong with p, if anything.
func (p Params) Validate() error {
	if p.Digits < 6 || p.Digits > 8 {
		return fmt.Errorf("totp digits %d: must be 6, 7 or 8", p.Digits)
	}
	if p.Period < time.Second || p.Period%time.Second != 0 {
		return fmt.Errorf("totp period %s: must be a whole number of seconds, at least 1s", p.Period)
	}
	if _, err := newHash(p.Algorithm); err != nil {
		return err
	}
	if p.Skew < 0 || p.Skew > MaxSkew {
		return fmt.Errorf("totp skew %d: must be between 0 and %d", p.Skew, MaxSkew)
	}
	return nil
}

// Step is the time step (RFC 6238's T) of t.
func (p Params) Step(t time.Time) int64 {
	return t.Unix() / int64(p.Period/time.Second)
}

func newHash(alg v1alpha1.TOTPAlgorithm) (func() hash.Hash, error) {
	switch alg {
	case v1alpha1.TOTPAlgorithmSHA1:
		return sha1.New, nil
	case v1alpha1.TOTPAlgorithmSHA256:
		return sha256.New, nil
	case v1alpha1.TOTPAlgorithmSHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("totp algorithm %q: must be SHA1, SHA256 or SHA512", alg)
}

// SecretSize is the secret length for an algorithm: the size of its hash
// output, as in RFC 6238's reference keys (20 bytes, 160 bits, for SHA1).
func SecretSize(alg v1alpha1.TOTPAlgorithm) int {
	switch alg {
	case v1alpha1.TOTPAlgorithmSHA256:
		return 32
	case v1alpha1.TOTPAlgorithmSHA512:
		return 64
	}
	return 20
}

// GenerateSecret returns a random 160-bit secret, the size for SHA1.
func GenerateSecret() ([]byte, error) {
	return GenerateSecretFor(v1alpha1.TOTPAlgorithmSHA1)
}

// GenerateSecretFor returns a random secret of SecretSize(alg) bytes.
func GenerateSecretFor(alg v1alpha1.TOTPAlgorithm) ([]byte, error) {
	secret := make([]byte, SecretSize(alg))
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return secret, nil
}

// Code returns the code of time t.
func Code(p Params, secret []byte, t time.Time) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if len(secret) == 0 {
		return "", fmt.Errorf("totp secret is empty")
	}
	if t.Unix() < 0 {
		return "", fmt.Errorf("totp time %s is before 1970", t)
	}
	h, _ := newHash(p.Algorithm)
	return hotp(h, secret, p.Step(t), p.Digits), nil
}

// hotp is RFC 4226's HOTP(K, C), truncated to digits.
func hotp(h func() hash.Hash, secret []byte, counter int64, digits int) string {
	mac := hmac.New(h, secret)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	offset := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[offset:offset+4]) & 0x7fffffff
	return fmt.Sprintf("%0*d", digits, bin%uint32(math.Pow10(digits)))
}

// Verify checks code against the steps now-skew..now+skew that are later
// than lastStep (the replay guard) and returns the matching step. The code
// must be exactly p.Digits ASCII digits. Every candidate is computed and
// compared in constant time.
func Verify(p Params, secret []byte, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	if p.Validate() != nil || len(secret) == 0 || len(code) != p.Digits {
		return 0, false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return 0, false
		}
	}
	h, _ := newHash(p.Algorithm)
	current := p.Step(now)
	for s := current - int64(p.Skew); s <= current+int64(p.Skew); s++ {
		if s < 0 || s <= lastStep {
			continue
		}
		match := subtle.ConstantTimeCompare([]byte(hotp(h, secret, s, p.Digits)), []byte(code)) == 1
		if match && !ok {
			step, ok = s, true
		}
	}
	return step, ok
}

// anyStep is a lastStep older than every step: Verify with it says whether
// a code was right at all, used or not.
const anyStep = math.MinInt64
