// Package jwks reads JSON Web Key sets: the keys identity providers sign
// users' tokens with (Parse, and KeySet, an issuer's keys fetched and kept
// up to date), and the keys an app verifies X-MFA-Assertion with
// (ParseP256: the P-256 keys the challenge server publishes at
// /.well-known/jwks.json).
package jwks

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Key is a public key of a set.
type Key struct {
	// Alg is the key's "alg", "" when not published.
	Alg string
	// Key is an *ecdsa.PublicKey, an *rsa.PublicKey or an
	// ed25519.PublicKey.
	Key any
}

type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func decodeSet(data []byte) ([]jwkJSON, error) {
	var set struct {
		Keys []jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, err
	}
	return set.Keys, nil
}

// Parse decodes the public signing keys of a JWK set by kid ("#i", the
// key's index, for a key without one); keys it cannot use (symmetric,
// encryption-only, unknown curves, malformed) are skipped.
func Parse(data []byte) (map[string]Key, error) {
	set, err := decodeSet(data)
	if err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	out := make(map[string]Key, len(set))
	for i, k := range set {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		key, err := k.publicKey(false)
		if err != nil || key == nil {
			continue
		}
		kid := k.Kid
		if kid == "" {
			kid = fmt.Sprintf("#%d", i)
		}
		out[kid] = Key{Alg: k.Alg, Key: key}
	}
	return out, nil
}

// ParseP256 returns the P-256 keys of a JWK set by kid; keys of another
// type are skipped. A P-256 key whose coordinates do not decode or are
// not on the curve is an error, and so is a set without any P-256 key.
// Coordinates shorter than 32 bytes (leading zeros dropped) are read as
// the numbers they are.
func ParseP256(data []byte) (map[string]*ecdsa.PublicKey, error) {
	set, err := decodeSet(data)
	if err != nil {
		return nil, err
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range set {
		if k.Kty != "EC" || k.Crv != "P-256" {
			continue
		}
		key, err := k.publicKey(true)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.Kid, err)
		}
		keys[k.Kid] = key.(*ecdsa.PublicKey)
	}
	if len(keys) == 0 {
		return nil, errors.New("no P-256 key")
	}
	return keys, nil
}

// publicKey decodes k; nil, nil for a key type or curve this package does
// not read. short accepts EC coordinates with their leading zeros dropped.
func (k *jwkJSON) publicKey(short bool) (any, error) {
	dec := base64.RawURLEncoding.DecodeString
	switch k.Kty {
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, nil
		}
		x, err1 := dec(k.X)
		y, err2 := dec(k.Y)
		if err1 != nil || err2 != nil {
			return nil, errors.New("bad EC coordinates")
		}
		size := (curve.Params().BitSize + 7) / 8
		if short && len(x) <= size && len(y) <= size {
			x, y = leftPad(x, size), leftPad(y, size)
		}
		if len(x) != size || len(y) != size {
			return nil, errors.New("bad EC coordinate size")
		}
		// Parse through the uncompressed point encoding, which checks
		// that the point is on the curve.
		point := append(append([]byte{4}, x...), y...)
		return ecdsa.ParseUncompressedPublicKey(curve, point)
	case "RSA":
		n, err1 := dec(k.N)
		e, err2 := dec(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		exp := 0
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, nil
		}
		x, err := dec(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, nil
}

func leftPad(b []byte, size int) []byte {
	if len(b) >= size {
		return b
	}
	return append(make([]byte, size-len(b), size), b...)
}

// CheckKeyType refuses a key used with an algorithm it is not for (an RSA
// key with ES256, a P-384 key with ES256, a key published for another
// alg, an RSA key shorter than 2048 bits).
func CheckKeyType(k Key, alg string) error {
	if k.Alg != "" && k.Alg != alg {
		return fmt.Errorf("key is published for %s, token uses %s", k.Alg, alg)
	}
	switch key := k.Key.(type) {
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if want == nil || key.Curve != want {
			return fmt.Errorf("EC key on %s cannot verify %s", key.Curve.Params().Name, alg)
		}
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			return fmt.Errorf("RSA key cannot verify %s", alg)
		}
		if key.N.BitLen() < 2048 {
			return errors.New("RSA key shorter than 2048 bits")
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return fmt.Errorf("Ed25519 key cannot verify %s", alg)
		}
	default:
		return fmt.Errorf("unsupported key type %T", k.Key)
	}
	return nil
}
