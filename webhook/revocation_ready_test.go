package webhook

import (
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/revocation"
)

func TestNotReadyNorRememberedBeforeTheRevocationsAreRead(t *testing.T) {
	g := NewWithT(t)
	var rs *revocation.FileStore
	f := newChallengeFixtureWith(t, challengeConfigYAML, func(o *Options, dataDir string) {
		rs = revocation.NewFileStore(dataDir, discardLogger())
		o.Revocations = rs
	})
	readyz := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		f.s.handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w
	}
	w := readyz()
	g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(w.Body.String()).To(ContainSubstring("the revocations"))

	b := f.browser(challengeUser)
	b.enrol()
	g.Expect(authStatus(b)).To(Equal(http.StatusUnauthorized), "no cookie counts before the revocations are read")

	g.Expect(rs.Load(f.s.revoked)).To(Succeed())
	g.Expect(readyz().Code).To(Equal(http.StatusOK))
	g.Expect(authStatus(b)).To(Equal(http.StatusOK))
}
