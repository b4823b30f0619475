// Package passkeytest is a software WebAuthn authenticator for tests and
// benchmarks: it answers the options the server hands a browser the way a
// browser and a CTAP2 key do (attestation "none", ES256), so that the
// server's ceremonies can be driven without a browser. Browser tests use
// Chromium's virtual authenticators instead.
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Flags of the authenticator data.
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

// Authenticator holds one credential.
type Authenticator struct {
	// Origin is the page's origin the browser reports; RPID what the
	// authenticator hashes into its data (a browser takes it from the
	// options; a test may set another).
	Origin, RPID string
	// Counter is the signature counter; each assertion adds one first.
	Counter uint32
	// BackupEligible makes a passkey that may be synced.
	BackupEligible bool

	key        *ecdsa.PrivateKey
	ID         []byte
	UserHandle []byte
}

var b64 = base64.RawURLEncoding

// New returns an authenticator for pages of origin with RP ID rpID.
func New(origin, rpID string) *Authenticator {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &Authenticator{Origin: origin, RPID: rpID, key: key, ID: id}
}

type options struct {
	Challenge string `json:"challenge"`
	User      struct {
		ID string `json:"id"`
	} `json:"user"`
}

func (a *Authenticator) clientData(kind string, optionsJSON []byte) ([]byte, error) {
	var o options
	if err := json.Unmarshal(optionsJSON, &o); err != nil {
		return nil, err
	}
	if o.User.ID != "" {
		h, err := b64.DecodeString(o.User.ID)
		if err != nil {
			return nil, err
		}
		a.UserHandle = h
	}
	return json.Marshal(map[string]any{"type": kind, "challenge": o.Challenge, "origin": a.Origin, "crossOrigin": false})
}

func (a *Authenticator) authData(flags byte, attested []byte) []byte {
	rp := sha256.Sum256([]byte(a.RPID))
	if a.BackupEligible {
		flags |= flagBE | flagBS
	}
	out := append(rp[:], flags|flagUP|flagUV)
	out = binary.BigEndian.AppendUint32(out, a.Counter)
	return append(out, attested...)
}

// Create answers navigator.credentials.create's options (the server's
// JSON) with what credential.toJSON() gives.
func (a *Authenticator) Create(optionsJSON []byte) ([]byte, error) {
	cd, err := a.clientData("webauthn.create", optionsJSON)
	if err != nil {
		return nil, err
	}
	x, y := make([]byte, 32), make([]byte, 32)
	a.key.PublicKey.X.FillBytes(x)
	a.key.PublicKey.Y.FillBytes(y)
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		return nil, err
	}
	attested := make([]byte, 16) // zero AAGUID
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(a.ID)))
	attested = append(append(attested, a.ID...), cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(flagAT, attested)})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.ID), "rawId": b64.EncodeToString(a.ID), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response":               map[string]any{"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(att), "transports": []string{"usb"}},
	})
}

// Get answers navigator.credentials.get's options.
func (a *Authenticator) Get(optionsJSON []byte) ([]byte, error) {
	cd, err := a.clientData("webauthn.get", optionsJSON)
	if err != nil {
		return nil, err
	}
	a.Counter++
	data := a.authData(0, nil)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, data...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.ID), "rawId": b64.EncodeToString(a.ID), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(data),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(a.UserHandle)},
	})
}
