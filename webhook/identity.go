package webhook

import (
	"context"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// identity is who the first factor says the user is.
type identity struct {
	User policy.User
	// AuthTime is when the user logged in upstream (JWT auth_time, else
	// iat); zero when the identity source does not say.
	AuthTime time.Time
	// Source is the identity source: "header", "jwt" or "forwardAuth".
	Source string
}

// identity sources.
const (
	sourceHeader = "header"
	sourceJWT    = "jwt"
	// sourceForwardAuth: the first factor's answer headers. (With a
	// token, the identity is the token's: sourceJWT.)
	sourceForwardAuth = "forwardAuth"
)

// headerSource reads the user from headers set by the first-factor proxy;
// names are canonical so that the lookup does not allocate.
type headerSource struct {
	user, groups, name string
}

func newHeaderSource(h *v1alpha1.HeaderIdentity) *headerSource {
	hs := &headerSource{user: textproto.CanonicalMIMEHeaderKey(h.GetUserHeader())}
	if h.Groups != "" {
		hs.groups = textproto.CanonicalMIMEHeaderKey(h.Groups)
	}
	if h.Name != "" {
		hs.name = textproto.CanonicalMIMEHeaderKey(h.Name)
	}
	return hs
}

// identify finds the user of a request through the policy's identity
// source; nil, nil means no identity (answer 401). Header identities are
// believed only when trustedPeer, the TCP peer being a trusted proxy; a
// JWT is verified against the issuer's keys wherever it comes from; a
// first factor (forwardAuth) is asked with the request's cookies, orig
// being the original request when known. A header identity is put in buf
// when given (the hot path's per-request state), so that it costs no
// allocation of its own.
func (e *policyEntry) identify(ctx context.Context, r *http.Request, buf *identity, trustedPeer bool, orig *originalRequest) (*identity, error) {
	switch {
	case e.header != nil:
		if !trustedPeer {
			return nil, nil
		}
		if buf == nil {
			buf = &identity{}
		}
		if !e.header.identify(r, buf) {
			return nil, nil
		}
		return buf, nil
	case e.verifier != nil:
		return e.verifier.identify(ctx, r)
	case e.firstFactor != nil:
		return e.firstFactor.identify(ctx, r, orig)
	}
	return nil, nil
}

func (h *headerSource) identify(r *http.Request, id *identity) bool {
	user := firstHeader(r.Header, h.user)
	if user == "" {
		return false
	}
	*id = identity{Source: sourceHeader}
	id.User.ID = user
	if strings.IndexByte(user, '@') > 0 {
		id.User.Email = user
	}
	if h.name != "" {
		id.User.Name = firstHeader(r.Header, h.name)
	}
	if h.groups != "" {
		id.User.Groups = splitGroups(r.Header[h.groups])
	}
	return true
}

// firstHeader is the trimmed value of a header the front door sets once.
// It is "" when the header is absent, and also when it comes more than
// once with different values: a client may have sent its own next to the
// proxy's, and which one is whose cannot be known, so neither is believed.
func firstHeader(h http.Header, canonical string) string {
	v := h[canonical]
	if len(v) == 0 {
		return ""
	}
	first := strings.TrimSpace(v[0])
	for _, other := range v[1:] {
		if strings.TrimSpace(other) != first {
			return ""
		}
	}
	return first
}

// splitGroups splits comma-separated groups, dropping empty ones.
func splitGroups(values []string) []string {
	if len(values) == 0 {
		return nil
	}
	n := 0
	for _, v := range values {
		n += strings.Count(v, ",") + 1
	}
	out := make([]string, 0, n)
	for _, v := range values {
		for g := range strings.SplitSeq(v, ",") {
			if g = strings.TrimSpace(g); g != "" {
				out = append(out, g)
			}
		}
	}
	return out
}
