// Package passkey is the server side of WebAuthn second factors, passkeys
// and security keys: the relying party a provider's settings make, and the
// registration and sign-in ceremonies, kept in internal/store. The
// cryptography (CBOR, COSE keys, attestation statements, signatures) is
// github.com/go-webauthn/webauthn's.
package passkey

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
	"golang.org/x/net/publicsuffix"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// Defaults are what unset settings of a provider default to: the RP ID to
// the cookie domain, else the public URL's host; the origins to the
// public URL's origin and, with its scheme, the policy's hosts that lie
// under the RP ID.
type Defaults struct {
	CookieDomain string
	PublicURL    *url.URL
	Hosts        []string
}

// FieldError names the setting that is wrong.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// RelyingParty is a provider's WebAuthn relying party.
type RelyingParty struct {
	ID      string
	Origins []string
	spec    *v1alpha1.WebAuthnSpec
	// allowed are the AAGUIDs that may register (nil: any).
	allowed []uuid.UUID
	wa      *webauthn.WebAuthn
}

// CheckSpec checks what the settings say on their own: origins that may
// run a ceremony, an RP ID that is a registrable suffix of each of them,
// AAGUIDs. Errors name the field (spec.webauthn.*).
func CheckSpec(spec *v1alpha1.WebAuthnSpec) error {
	if spec == nil {
		return nil
	}
	for i, o := range spec.Origins {
		host, err := originHost(o)
		if err != nil {
			return &FieldError{Field: fmt.Sprintf("spec.webauthn.origins[%d]", i), Message: err.Error()}
		}
		if spec.RPID != "" && !RegistrableSuffix(spec.RPID, host) {
			return &FieldError{Field: "spec.webauthn.rpID", Message: fmt.Sprintf(
				"%q is not %s nor a registrable suffix of it (origin %s); set rpID to a domain every origin is in, or fix origins", spec.RPID, host, o)}
		}
	}
	if spec.RPID != "" {
		if err := protocol.ValidateRPID(spec.RPID); err != nil || net.ParseIP(spec.RPID) != nil {
			return &FieldError{Field: "spec.webauthn.rpID", Message: fmt.Sprintf("%q is not a domain name", spec.RPID)}
		}
	}
	if _, err := aaguids(spec); err != nil {
		return err
	}
	return nil
}

// New returns the relying party of a provider's settings and d.
func New(spec *v1alpha1.WebAuthnSpec, d Defaults) (*RelyingParty, error) {
	if err := CheckSpec(spec); err != nil {
		return nil, err
	}
	if spec == nil {
		spec = &v1alpha1.WebAuthnSpec{}
	}
	rp := &RelyingParty{spec: spec, ID: spec.RPID}
	if rp.ID == "" {
		rp.ID = strings.TrimPrefix(strings.ToLower(d.CookieDomain), ".")
	}
	if rp.ID == "" && d.PublicURL != nil {
		rp.ID = strings.ToLower(d.PublicURL.Hostname())
	}
	if rp.ID == "" {
		return nil, &FieldError{Field: "spec.webauthn.rpID", Message: "no default: set rpID, or give the operator --cookie-domain or --public-url"}
	}
	rp.Origins = slices.Clone(spec.Origins)
	if len(rp.Origins) == 0 {
		var err error
		if rp.Origins, err = defaultOrigins(rp.ID, d); err != nil {
			return nil, err
		}
	}
	var err error
	if rp.allowed, err = aaguids(spec); err != nil {
		return nil, err
	}
	rp.wa, err = webauthn.New(rp.config())
	if err != nil {
		return nil, &FieldError{Field: "spec.webauthn", Message: err.Error()}
	}
	return rp, nil
}

// defaultOrigins are the public URL's origin (which must lie under rpID:
// the challenge pages run the ceremonies) and the policy's hosts under it.
func defaultOrigins(rpID string, d Defaults) ([]string, error) {
	if d.PublicURL == nil || d.PublicURL.Host == "" {
		return nil, &FieldError{Field: "spec.webauthn.origins", Message: "no default: set origins, or give the operator --public-url"}
	}
	scheme := strings.ToLower(d.PublicURL.Scheme)
	public := scheme + "://" + strings.ToLower(d.PublicURL.Host)
	host, err := originHost(public)
	if err != nil {
		return nil, &FieldError{Field: "spec.webauthn.origins", Message: "the default, the public URL " + public + ": " + err.Error()}
	}
	if !RegistrableSuffix(rpID, host) {
		return nil, &FieldError{Field: "spec.webauthn.rpID", Message: fmt.Sprintf(
			"%q is not %s nor a registrable suffix of it (the public URL, where the challenge pages run); set rpID or the operator's --cookie-domain to a domain of the public URL", rpID, host)}
	}
	origins := []string{public}
	for _, h := range d.Hosts {
		o := scheme + "://" + strings.ToLower(h)
		if strings.Contains(h, "*") || slices.Contains(origins, o) {
			continue
		}
		if hh, err := originHost(o); err == nil && RegistrableSuffix(rpID, hh) {
			origins = append(origins, o)
		}
	}
	return origins, nil
}

// originHost returns the host of a web origin that may run a ceremony:
// https, or http for localhost names (browsers treat them as secure).
func originHost(origin string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port])", origin)
	}
	host := strings.ToLower(u.Hostname())
	if net.ParseIP(host) != nil {
		return "", fmt.Errorf("%q: WebAuthn needs a host name, not an IP address", origin)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (host == "localhost" || strings.HasSuffix(host, ".localhost")):
	default:
		return "", fmt.Errorf("%q: browsers run WebAuthn only on https origins (http only for localhost names)", origin)
	}
	return host, nil
}

// RegistrableSuffix says whether rpID may be the RP ID of a page on host:
// host itself, or a parent domain of host that is not a public suffix
// (browsers refuse com, co.uk, github.io).
func RegistrableSuffix(rpID, host string) bool {
	rpID, host = strings.ToLower(rpID), strings.ToLower(host)
	if rpID == host {
		return rpID != ""
	}
	if !strings.HasSuffix(host, "."+rpID) {
		return false
	}
	suffix, _ := publicsuffix.PublicSuffix(rpID)
	return suffix != rpID
}

func aaguids(spec *v1alpha1.WebAuthnSpec) ([]uuid.UUID, error) {
	if spec == nil || len(spec.AllowedAAGUIDs) == 0 {
		return nil, nil
	}
	if spec.GetAttestation() != v1alpha1.AttestationDirect {
		return nil, &FieldError{Field: "spec.webauthn.allowedAAGUIDs", Message: "needs attestation: direct (a key tells its model only in an attestation)"}
	}
	out := make([]uuid.UUID, 0, len(spec.AllowedAAGUIDs))
	for i, s := range spec.AllowedAAGUIDs {
		id, err := uuid.Parse(s)
		if err != nil || id == uuid.Nil {
			return nil, &FieldError{Field: fmt.Sprintf("spec.webauthn.allowedAAGUIDs[%d]", i), Message: fmt.Sprintf("%q is not an AAGUID (a UUID such as cb69481e-8ff7-4039-93ec-0a2729a154a8)", s)}
		}
		out = append(out, id)
	}
	return out, nil
}

func (rp *RelyingParty) config() *webauthn.Config {
	s := rp.spec
	t := s.GetTimeout()
	timeouts := webauthn.TimeoutConfig{Enforce: true, Timeout: t, TimeoutUVD: t}
	rk := protocol.ResidentKeyRequirement(s.GetResidentKey())
	required := rk == protocol.ResidentKeyRequirementRequired
	conveyance := protocol.PreferNoAttestation
	if s.GetAttestation() == v1alpha1.AttestationDirect {
		conveyance = protocol.PreferDirectAttestation
	}
	return &webauthn.Config{
		RPID:                  rp.ID,
		RPDisplayName:         s.GetRPDisplayName(),
		RPOrigins:             rp.Origins,
		AttestationPreference: conveyance,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        rk,
			RequireResidentKey: &required,
			UserVerification:   protocol.UserVerificationRequirement(s.GetUserVerification()),
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeouts, Registration: timeouts},
	}
}
