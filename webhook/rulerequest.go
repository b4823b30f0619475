package webhook

import (
	"net/http"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// RuleRequest is the `request` variable /auth gives a policy's rules for
// an original request, as the front door describes it (X-Original-URL and
// X-Original-Method; headers, the client address ip and the time now),
// read by the same code, strict about ambiguous paths as the server is by
// default. Headers and query are always decoded; request.geo is left for
// the caller. `mfa-operator explain` judges with it.
func RuleRequest(rawURL, method string, header http.Header, ip string, now time.Time) (policy.Request, error) {
	var o originalRequest
	if err := parseOriginalURL(rawURL, method, pathsStrict, &o); err != nil {
		return policy.Request{}, err
	}
	var req policy.Request
	buildRequest(&http.Request{Header: header}, &policyEntry{needsURL: true, needsHeaders: true, needsQuery: true}, &o, ip, now, &req)
	return req, nil
}
