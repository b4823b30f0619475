package webhook

import (
	"net/http"

	"github.com/mfa-operator/mfa-operator/internal/revocation"
)

// readyz is /readyz: not ready while the revocations have not been read
// (every cookie is refused until then, so traffic is better sent to
// another replica), else what the configuration's loader says.
func readyz(cfg *config, revoked *revocation.List) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if revoked != nil && !revoked.Synced() {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: the revocations (ConfigMaps mfa-revocations-*, or revocations.json in --data-dir) have not been read yet; see the log\n"))
			return
		}
		cfg.handleReadyz(w, r)
	}
}
