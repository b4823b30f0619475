package webhook

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// ssoUser is a user of the test first factor.
type ssoUser struct {
	email, user, username string
	groups                []string
	// token, when set, is the Authorization the answer carries
	// (oauth2-proxy --set-authorization-header).
	token string
}

// testFirstFactor answers as oauth2-proxy's /oauth2/auth does (its
// documentation, "Configuring for use with the Nginx auth_request
// directive"): 202 with X-Auth-Request-User, -Email, -Groups and
// -Preferred-Username for a session cookie it knows, 401 otherwise.
type testFirstFactor struct {
	mu       sync.Mutex
	sessions map[string]ssoUser // _oauth2_proxy value -> user
	status   int                // when set, the answer to every call
	calls    int
	block    bool // wait for the caller to give up
	lastReq  http.Header
}

func newTestFirstFactor() *testFirstFactor {
	return &testFirstFactor{sessions: map[string]ssoUser{}}
}

func (ff *testFirstFactor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ff.mu.Lock()
	ff.calls++
	ff.lastReq = r.Header.Clone()
	status, block := ff.status, ff.block
	var u ssoUser
	var ok bool
	if c, err := r.Cookie("_oauth2_proxy"); err == nil {
		u, ok = ff.sessions[c.Value]
	}
	ff.mu.Unlock()
	switch {
	case block:
		<-r.Context().Done()
		return
	case status != 0:
		w.WriteHeader(status)
		return
	case !ok:
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h := w.Header()
	h.Set("X-Auth-Request-User", u.user)
	h.Set("X-Auth-Request-Email", u.email)
	if u.username != "" {
		h.Set("X-Auth-Request-Preferred-Username", u.username)
	}
	if len(u.groups) > 0 {
		h.Set("X-Auth-Request-Groups", strings.Join(u.groups, ","))
	}
	if u.token != "" {
		h.Set("Authorization", "Bearer "+u.token)
	}
	w.WriteHeader(http.StatusAccepted)
}

func (ff *testFirstFactor) signIn(cookie string, u ssoUser) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	ff.sessions[cookie] = u
}

func (ff *testFirstFactor) set(status int, block bool) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	ff.status, ff.block = status, block
}

func (ff *testFirstFactor) callCount() int {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return ff.calls
}

func (ff *testFirstFactor) lastHeaders() http.Header {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return ff.lastReq
}

// ssoPolicyYAML is the MFAPolicy apps/sso for app.example.com, asking the
// first factor at url; extra is appended to its forwardAuth.
func ssoPolicyYAML(url, extra, rules string) string {
	return coreProvidersYAML + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: sso, namespace: apps }
spec:
  hosts: [app.example.com]
  identity:
    forwardAuth:
      url: ` + url + `/oauth2/auth
      signinURL: https://sso.example.com/oauth2/start` + extra + `
  rules:` + rules
}

const ssoRules = `
  - name: ops
    when: '"ops" in user.groups'
    action: Allow
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
`

// newSSOFixture is a server whose policy apps/sso asks a test first
// factor, served over HTTP.
func newSSOFixture(t testing.TB, extra, rules string) (*coreFixture, *testFirstFactor) {
	ff := newTestFirstFactor()
	srv := httptest.NewServer(ff)
	t.Cleanup(srv.Close)
	return newCoreServer(t, ssoPolicyYAML(srv.URL, extra, rules)), ff
}

// ssoAuth is the front door's auth request for https://app.example.com/
// with the given first-factor cookie ("" for none).
func ssoAuth(cookie string, more ...*http.Cookie) *http.Request {
	r := authRequest("/auth/apps/sso", "https://app.example.com/reports?q=1", nil)
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: "_oauth2_proxy", Value: cookie})
	}
	for _, c := range more {
		r.AddCookie(c)
	}
	return r
}
