package totp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
)

// Recovery codes are 10 characters of Crockford's base32 alphabet (no i, l,
// o, u: nothing to confuse), 50 random bits each, shown as xxxx-xxxx-xx.
// They are stored as salted SHA-256 hashes: with that much entropy a slow
// hash adds nothing but CPU cost, and the lockout bounds online guessing.
const (
	recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	recoveryLength   = 10
	// RecoveryCodeCount is how many codes an enrolment gets.
	RecoveryCodeCount = 10
	recoveryHashTag   = "sha256"
	recoverySaltSize  = 16
)

var b64 = base64.RawURLEncoding

// NewRecoveryCodes returns n codes to show once, and their hashes to store.
func NewRecoveryCodes(n int) (codes []string, hashes []string, err error) {
	codes = make([]string, 0, n)
	hashes = make([]string, 0, n)
	raw := make([]byte, recoveryLength)
	for range n {
		if _, err := rand.Read(raw); err != nil {
			return nil, nil, err
		}
		var plain [recoveryLength]byte
		for i, b := range raw {
			plain[i] = recoveryAlphabet[b&31] // 32 letters: 5 bits, no bias
		}
		p := string(plain[:])
		codes = append(codes, p[:4]+"-"+p[4:8]+"-"+p[8:])
		h, err := hashRecoveryCode(p)
		if err != nil {
			return nil, nil, err
		}
		hashes = append(hashes, h)
	}
	return codes, hashes, nil
}

func hashRecoveryCode(normalized string) (string, error) {
	salt := make([]byte, recoverySaltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s$%s$%s", recoveryHashTag, b64.EncodeToString(salt), b64.EncodeToString(saltedSum(salt, normalized))), nil
}

func saltedSum(salt []byte, normalized string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(normalized))
	return h.Sum(nil)
}

// normalizeRecoveryCode folds what a user may type into the stored form:
// case, dashes and spaces do not matter, o reads as 0, i and l as 1.
func normalizeRecoveryCode(code string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		switch r {
		case '-', ' ', '\t':
			continue
		case 'o':
			r = '0'
		case 'i', 'l':
			r = '1'
		}
		if r > 127 || !strings.ContainsRune(recoveryAlphabet, r) {
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != recoveryLength {
		return "", false
	}
	return b.String(), true
}

// MatchRecoveryCode returns the index of the hash code matches. Every hash
// is computed and compared in constant time, whatever matches.
func MatchRecoveryCode(hashes []string, code string) (index int, ok bool) {
	normalized, valid := normalizeRecoveryCode(code)
	if !valid {
		return -1, false
	}
	index = -1
	for i, stored := range hashes {
		parts := strings.Split(stored, "$")
		if len(parts) != 3 || parts[0] != recoveryHashTag {
			continue
		}
		salt, err1 := b64.DecodeString(parts[1])
		want, err2 := b64.DecodeString(parts[2])
		if err1 != nil || err2 != nil {
			continue
		}
		if subtle.ConstantTimeCompare(saltedSum(salt, normalized), want) == 1 && index < 0 {
			index = i
		}
	}
	return index, index >= 0
}
