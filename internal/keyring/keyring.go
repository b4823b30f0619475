// Package keyring holds the keys of the challenge server: symmetric keys that
// encrypt and authenticate cookies and stored TOTP secrets, and signing keys
// of the assertions given to apps. The first key of each list is the one
// used for new material; every listed key is accepted, so adding a key in
// front never invalidates what older keys made.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Purposes separate the keys derived from one symmetric key.
const (
	PurposeCookie = "cookie"
	PurposeStore  = "store"
	PurposeCSRF   = "csrf"
)

// SymmetricKey is 32 random bytes.
type SymmetricKey struct {
	ID      string    `json:"id"`
	Secret  []byte    `json:"secret"`
	Created time.Time `json:"created"`
}

// SigningKey is an ECDSA P-256 private key in PKCS#8 PEM.
type SigningKey struct {
	ID            string    `json:"id"`
	PrivateKeyPEM string    `json:"privateKeyPEM"`
	Created       time.Time `json:"created"`
}

// Data is the stored form of a keyring (the keyring Secret's keyring.json).
type Data struct {
	SymmetricKeys []SymmetricKey `json:"symmetricKeys"`
	SigningKeys   []SigningKey   `json:"signingKeys"`
}

// Keyring is a parsed keyring, keys decoded and derived once.
type Keyring struct {
	data    Data
	aeads   map[string][]keyedAEAD // purpose -> keys, current first
	signers []Signer
}

type keyedAEAD struct {
	id string
	// rawID is id decoded, as Seal writes it; nil when id is not
	// lower-case hex, and then nothing sealed with the key opens.
	rawID []byte
	aead  cipher.AEAD
}

// Signer is a decoded signing key.
type Signer struct {
	ID  string
	Key *ecdsa.PrivateKey
}

// Generate makes a new keyring with one key of each kind.
func Generate(now time.Time) (*Data, error) {
	d := &Data{}
	if err := d.AddSymmetricKey(now); err != nil {
		return nil, err
	}
	if err := d.AddSigningKey(now); err != nil {
		return nil, err
	}
	return d, nil
}

// AddSymmetricKey puts a new current symmetric key in front.
func (d *Data) AddSymmetricKey(now time.Time) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	d.SymmetricKeys = append([]SymmetricKey{{ID: newID(), Secret: secret, Created: now.UTC()}}, d.SymmetricKeys...)
	return nil
}

// AddSigningKey puts a new current signing key in front.
func (d *Data) AddSigningKey(now time.Time) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	d.SigningKeys = append([]SigningKey{{ID: newID(), PrivateKeyPEM: string(p), Created: now.UTC()}}, d.SigningKeys...)
	return nil
}

// Marshal encodes the keyring for its Secret.
func (d *Data) Marshal() ([]byte, error) { return json.Marshal(d) }

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Parse decodes and checks a keyring. A keyring without a usable key of
// each kind is refused.
func Parse(raw []byte) (*Keyring, error) {
	var d Data
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("decoding keyring: %w", err)
	}
	return New(d)
}

// New checks a keyring and derives its keys.
func New(d Data) (*Keyring, error) {
	if len(d.SymmetricKeys) == 0 {
		return nil, errors.New("keyring has no symmetric key")
	}
	if len(d.SigningKeys) == 0 {
		return nil, errors.New("keyring has no signing key")
	}
	kr := &Keyring{data: d, aeads: map[string][]keyedAEAD{}}
	ids := map[string]bool{}
	for _, k := range d.SymmetricKeys {
		if len(k.Secret) != 32 {
			return nil, fmt.Errorf("keyring symmetric key %q is %d bytes, want 32", k.ID, len(k.Secret))
		}
		if k.ID == "" || ids[k.ID] {
			return nil, fmt.Errorf("keyring symmetric key id %q is empty or repeated", k.ID)
		}
		ids[k.ID] = true
		for _, purpose := range []string{PurposeCookie, PurposeStore, PurposeCSRF} {
			sub, err := hkdf.Key(sha256.New, k.Secret, nil, "mfa-operator "+purpose, 32)
			if err != nil {
				return nil, err
			}
			block, err := aes.NewCipher(sub)
			if err != nil {
				return nil, err
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				return nil, err
			}
			kr.aeads[purpose] = append(kr.aeads[purpose], keyedAEAD{id: k.ID, rawID: rawID(k.ID), aead: aead})
		}
	}
	for _, k := range d.SigningKeys {
		block, _ := pem.Decode([]byte(k.PrivateKeyPEM))
		if block == nil {
			return nil, fmt.Errorf("keyring signing key %q is not PEM", k.ID)
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("keyring signing key %q: %w", k.ID, err)
		}
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("keyring signing key %q is not ECDSA P-256", k.ID)
		}
		kr.signers = append(kr.signers, Signer{ID: k.ID, Key: ec})
	}
	return kr, nil
}

// Data returns the stored form.
func (k *Keyring) Data() Data { return k.data }

// Signers returns the signing keys, current first.
func (k *Keyring) Signers() []Signer { return k.signers }

// ErrNoKey is returned by Open when no listed key opens the data.
var ErrNoKey = errors.New("keyring: no key opens this data")

// Seal encrypts and authenticates plaintext for a purpose with the current
// key. aad binds the result to a context (e.g. the user); Open with another
// aad fails. The result is: key index id (8 bytes) | nonce | ciphertext.
func (k *Keyring) Seal(purpose string, plaintext, aad []byte) []byte {
	cur := k.aeads[purpose][0]
	idb, _ := hex.DecodeString(cur.id)
	out := make([]byte, 0, len(idb)+cur.aead.NonceSize()+len(plaintext)+cur.aead.Overhead()+1)
	out = append(out, byte(len(idb)))
	out = append(out, idb...)
	nonce := make([]byte, cur.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return cur.aead.Seal(out, nonce, plaintext, aad)
}

// Open reverses Seal with whichever listed key sealed the data.
func (k *Keyring) Open(purpose string, sealed, aad []byte) ([]byte, error) {
	ka, rest := k.keyOf(purpose, sealed)
	if ka == nil {
		return nil, ErrNoKey
	}
	ns := ka.aead.NonceSize()
	if len(rest) < ns+ka.aead.Overhead() {
		return nil, ErrNoKey
	}
	pt, err := ka.aead.Open(nil, rest[:ns], rest[ns:], aad)
	if err != nil {
		return nil, ErrNoKey
	}
	return pt, nil
}

// KnowsKeyOf says whether the key id at the start of sealed (which may be
// cut short after it) names a key listed for purpose. It decrypts and
// allocates nothing: a cheap test that data sealed by another keyring, or
// not sealed at all, fails before anyone spends a decryption on it. Open
// still decides.
func (k *Keyring) KnowsKeyOf(purpose string, sealed []byte) bool {
	ka, _ := k.keyOf(purpose, sealed)
	return ka != nil
}

// keyOf finds the key whose id sealed starts with (a length byte, then
// the id's bytes, see Seal), and returns it with what follows the id.
func (k *Keyring) keyOf(purpose string, sealed []byte) (*keyedAEAD, []byte) {
	if len(sealed) < 1 {
		return nil, nil
	}
	n := int(sealed[0])
	if len(sealed) < 1+n {
		return nil, nil
	}
	id := sealed[1 : 1+n]
	keys := k.aeads[purpose]
	for i := range keys {
		if keys[i].rawID != nil && string(keys[i].rawID) == string(id) {
			return &keys[i], sealed[1+n:]
		}
	}
	return nil, nil
}

// rawID decodes a key id that is lower-case hex (nil otherwise): the
// sealed id of a key matches exactly when its hex form is the key's id.
func rawID(id string) []byte {
	b, err := hex.DecodeString(id)
	if err != nil || hex.EncodeToString(b) != id {
		return nil
	}
	return b
}
