package controllers

import (
	"testing"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// TestServedPatterns: a route serves a policy host when their patterns
// overlap once both are in the one form of internal/hostname.
func TestServedPatterns(t *testing.T) {
	p := &v1alpha1.MFAPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "admin"},
		Spec: v1alpha1.MFAPolicySpec{Hosts: []string{"admin.example.com", "*.corp.example.com"}}}
	for _, tc := range []struct {
		route  string
		serves bool
	}{
		{"admin.example.com", true},
		{"ADMIN.example.com.", true},
		{"admin.example.com:443", true},
		{"*.example.com", true},           // a route wildcard over a policy host
		{"wiki.corp.example.com", true},   // a route host under a policy wildcard
		{"a.b.corp.example.com", true},    // at any depth
		{"*.eu.corp.example.com", true},   // nested wildcards
		{"corp.example.com", false},       // a wildcard does not name its own suffix
		{"shop.example.com", false},       // another host
		{"admin.example.com.evil", false}, // not a suffix match
		{"bad host", false},               // not a host: never matches
		{"xn--bcher-kva.example.com", false},
	} {
		got := servedPatterns(p, []string{tc.route})
		if (len(got) > 0) != tc.serves {
			t.Errorf("route host %q: served %v, want %v", tc.route, len(got) > 0, tc.serves)
		}
	}
}

// TestIngressGap: which auth-url annotations send an Ingress's requests to
// the policy.
func TestIngressGap(t *testing.T) {
	o := Options{Namespace: "mfa-system", PublicURL: "https://auth.example.com"}
	p := &v1alpha1.MFAPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "admin"}}
	for _, tc := range []struct {
		authURL string // "-": no annotation
		gap     string
	}{
		{"-", "without the auth-url annotation"},
		{o.AuthURL("apps", "admin"), ""},
		{"http://mfa-challenge.mfa-system.svc/auth/apps/admin", ""},
		{"http://mfa-challenge.mfa-system:80/auth/apps/admin", ""},
		{"https://auth.example.com/auth/apps/admin", ""},
		{"http://mfa-challenge.mfa-system.svc.cluster.local/auth", ""},
		{"http://mfa-challenge.mfa-system.svc.cluster.local/auth/apps/other", "with the auth-url of MFAPolicy apps/other, not this policy's"},
		{"http://oauth2-proxy.auth.svc/oauth2/auth", `with an auth-url ("http://oauth2-proxy.auth.svc/oauth2/auth") that is not the challenge server`},
		{"http://mfa-challenge.other-ns.svc/auth/apps/admin", `with an auth-url ("http://mfa-challenge.other-ns.svc/auth/apps/admin") that is not the challenge server`},
		{"http://mfa-challenge.mfa-system.svc/forward-auth/apps/admin", `with an auth-url ("http://mfa-challenge.mfa-system.svc/forward-auth/apps/admin") that names no policy`},
	} {
		ing := &networkingv1.Ingress{}
		if tc.authURL != "-" {
			ing.Annotations = map[string]string{annotationAuthURL: tc.authURL}
		}
		NewWithT(t).Expect(o.ingressGap(p, ing)).To(Equal(tc.gap), tc.authURL)
	}
}
