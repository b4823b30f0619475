package webhook

import (
	"encoding/json"
	"net/http"
	"strings"
)

// browserNavigation says whether the original request, whose headers the
// front door passed on, is a browser navigating to a page (request.interactive).
// It is not when the client says it wants no HTML (an Accept without
// text/html), when it is a script (X-Requested-With), or when it carries a
// bearer token and no cookies (an API client). A request without Accept is
// taken as a navigation: every browser sends one, and front doors that drop
// it keep the redirect they had.
func browserNavigation(h http.Header) bool {
	if len(h["X-Requested-With"]) > 0 {
		return false
	}
	if a := h["Authorization"]; len(a) > 0 && len(h["Cookie"]) == 0 && bearer(a[0]) {
		return false
	}
	accept, ok := h["Accept"]
	if !ok {
		return true
	}
	for _, v := range accept {
		if containsFold(v, "text/html") {
			return true
		}
	}
	return false
}

// bearer says whether an Authorization value is a bearer token.
func bearer(v string) bool {
	v = strings.TrimSpace(v)
	return len(v) > 7 && strings.EqualFold(v[:7], "bearer ")
}

// containsFold is strings.Contains, ASCII case-insensitively, without
// allocating.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// problemSecondFactor is the "type" of the problem document an API client
// gets instead of a redirect (RFC 9457).
const problemSecondFactor = "https://mfa.operator.dev/problems/second-factor-required"

// problem is an RFC 9457 problem document, with the challenge URL as an
// extension member.
type problem struct {
	Type         string `json:"type"`
	Title        string `json:"title"`
	Status       int    `json:"status"`
	Detail       string `json:"detail"`
	Policy       string `json:"policy,omitempty"`
	ChallengeURL string `json:"challenge_url,omitempty"`
}

// apiClientAnswer is what a client that is not a browser gets when an
// identity or a second factor is missing: a 401 it can act on, never a
// redirect to an HTML page it would follow in a loop. The headers and the
// body name the challenge URL, for a person to open in a browser.
func apiClientAnswer(d *decision) (wwwAuthenticate string, body []byte) {
	p := problem{
		Type:         problemSecondFactor,
		Title:        "A second factor is required",
		Status:       http.StatusUnauthorized,
		Detail:       "This request needs a second factor that this client has not given. Open the challenge URL in a browser, answer the second factor there, then send the request again with that browser's cookies.",
		ChallengeURL: d.location,
	}
	if d.reason == "no identity" {
		p.Title = "Authentication is required"
		p.Detail = "This request carries no identity the policy accepts (or a token that does not verify). Sign in first; then open the challenge URL in a browser if a second factor is asked."
	}
	realm := ""
	if d.entry != nil {
		p.Policy = d.entry.key
		realm = d.entry.key
	}
	body, _ = json.Marshal(p)
	wwwAuthenticate = `MFA realm="` + realm + `"`
	if d.location != "" {
		wwwAuthenticate += `, uri="` + d.location + `"`
	}
	return wwwAuthenticate, append(body, '\n')
}

// respondAPIClient writes apiClientAnswer as a 401.
func respondAPIClient(w http.ResponseWriter, d *decision) {
	challenge, body := apiClientAnswer(d)
	h := w.Header()
	h["Www-Authenticate"] = []string{challenge}
	h["Content-Type"] = []string{"application/problem+json"}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(body)
}
