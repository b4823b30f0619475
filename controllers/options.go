// Package controllers holds the reconcilers of mfa-operator: MFAProvider and
// MFAPolicy (validate, write verdicts) and the bundle (compile every valid
// object into one Secret and run the challenge server that reads it).
package controllers

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/mfa-operator/mfa-operator/internal/passkey"
)

// Names of what the controller creates in its namespace.
const (
	// ChallengeName names the challenge server's Deployment, Service and
	// ServiceAccount.
	ChallengeName = "mfa-challenge"
	// ChallengePortName is the named container port the Service targets.
	ChallengePortName = "http"
	// ChallengePort is the challenge server's container port.
	ChallengePort = 8080
	// ChallengeMetricsPortName and ChallengeMetricsPort are the container
	// port of the challenge server's metrics (--metrics-addr). The Service
	// does not expose it: Prometheus scrapes the pods.
	ChallengeMetricsPortName = "metrics"
	ChallengeMetricsPort     = 9090
	// DefaultWebhookImage is the challenge server's image when neither
	// --webhook-image nor MFA_WEBHOOK_IMAGE says otherwise.
	DefaultWebhookImage = "mfa-operator:latest"
	// DefaultWebhookReplicas is the challenge server's replica count.
	DefaultWebhookReplicas = 2
	// ControllerName reports events and owns fields.
	ControllerName = "mfa-operator"
	// GeoIPMountPath is where --geoip-volume-claim is mounted in the
	// challenge server's pods.
	GeoIPMountPath = "/var/lib/geoip"
)

// Options are the operator's settings, shared by the reconcilers and passed
// on to the challenge server.
type Options struct {
	// Namespace of the challenge server, the bundle and the keyring.
	Namespace string
	// PublicURL is the challenge server's external URL; see SigninBaseURL
	// for the default when it is empty.
	PublicURL string
	// CookieDomain, TrustedProxies, InsecureCookies, TrustXRealIP and
	// AmbiguousPaths are passed on to the challenge server
	// (--trust-x-real-ip, --allow-ambiguous-paths).
	CookieDomain    string
	TrustedProxies  string
	InsecureCookies bool
	// IdentityHeaders are the only identity headers policies may name
	// (nil: any); passed on to the challenge server too.
	IdentityHeaders []string
	TrustXRealIP    bool
	AmbiguousPaths  bool
	// WebhookImage and WebhookReplicas shape the challenge Deployment.
	WebhookImage    string
	WebhookReplicas int32
	// GeoIPDB are the challenge server's GeoIP database files
	// (comma-separated, paths in its pods), passed on as --geoip-db; set,
	// policies may read request.geo. GeoIPVolumeClaim names a
	// PersistentVolumeClaim of Namespace holding them, mounted read-only
	// at GeoIPMountPath.
	GeoIPDB          string
	GeoIPVolumeClaim string
	// ManageDeployment: when false the controller writes the bundle and the
	// keyring but leaves running the challenge server to someone else (a
	// local process in the demo).
	ManageDeployment bool
}

// identityHeadersFlag is IdentityHeaders as the challenge server's flag.
func (o Options) identityHeadersFlag() string {
	if len(o.IdentityHeaders) == 0 {
		return "*"
	}
	return strings.Join(o.IdentityHeaders, ",")
}

// ServiceURL is the in-cluster address of the challenge Service.
func (o Options) ServiceURL() string {
	return fmt.Sprintf("http://%s.%s.svc.cluster.local", ChallengeName, o.Namespace)
}

// AuthURL is the value of ingress-nginx's auth-url annotation for a policy.
func (o Options) AuthURL(namespace, name string) string {
	return o.ServiceURL() + "/auth/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// SigninURL is the value of ingress-nginx's auth-signin annotation for a
// policy.
func (o Options) SigninURL(namespace, name string) string {
	return o.SigninBaseURL() + "/challenge/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// SigninBaseURL is the challenge server's external URL: --public-url when
// set. Otherwise it is derived, because the browser has to be sent
// somewhere: https://auth.<cookie-domain> when a cookie domain is set (the
// cookie must be set on a host under that domain anyway), else the
// in-cluster Service address, which only clients inside the cluster reach.
// With --insecure-cookies the derived scheme is http.
func (o Options) SigninBaseURL() string {
	if u := strings.TrimRight(o.PublicURL, "/"); u != "" {
		return u
	}
	if d := strings.Trim(o.CookieDomain, "."); d != "" {
		scheme := "https"
		if o.InsecureCookies {
			scheme = "http"
		}
		return scheme + "://auth." + d
	}
	return o.ServiceURL()
}

// WebAuthnDefaults are what a webauthn provider's unset RP ID and origins
// default to: the cookie domain and the public URL (the sign-in base URL
// when --public-url is not set).
func (o Options) WebAuthnDefaults() passkey.Defaults {
	d := passkey.Defaults{CookieDomain: o.CookieDomain}
	if u, err := url.Parse(o.SigninBaseURL()); err == nil && u.Host != "" {
		d.PublicURL = u
	}
	return d
}
