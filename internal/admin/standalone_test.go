package admin

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/revocation"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

const standaloneObjects = `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: google-authenticator, namespace: apps }
spec: { type: totp }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: admin, namespace: apps }
spec:
  hosts: [admin.example.com]
  identity: { header: { user: X-Auth-Request-Email } }
  rules:
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
`

func TestStandaloneCommands(t *testing.T) {
	g := NewWithT(t)
	configDir, dataDir := t.TempDir(), t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(configDir, "objects.yaml"), []byte(standaloneObjects), 0o600)).To(Succeed())
	st, err := store.NewFileStore(filepath.Join(dataDir, "enrollments.db"))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = st.Update(context.Background(), store.Key{Provider: provider, User: ana}, func(e *store.Enrollment) error {
		e.TOTP = &store.TOTPEnrollment{SealedSecret: []byte("x"), Digits: 6, PeriodSeconds: 30, Created: time.Now()}
		e.LockedUntil = time.Now().Add(time.Hour)
		return nil
	})
	g.Expect(err).NotTo(HaveOccurred())

	// While a server holds the store, revoke works and the others say why not.
	dirs := []string{"--config-dir", configDir, "--data-dir", dataDir}
	code, _, errOut := runCLI(append([]string{"revoke", ana}, dirs...)...)
	g.Expect(code).To(BeZero(), errOut)
	g.Expect(auditLines(errOut)).To(HaveLen(1))
	g.Expect(auditLines(errOut)[0]).To(HaveKeyWithValue("actor", HavePrefix("os:")))
	l := revocation.NewList(nil)
	g.Expect(revocation.NewFileStore(dataDir, nil).Load(l)).To(Succeed())
	g.Expect(l.NotBefore(ana)).NotTo(BeZero())
	code, _, errOut = runCLI(append([]string{"users"}, dirs...)...)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("stop it for users, reset and unlock"))
	g.Expect(st.Close()).To(Succeed())

	code, out, errOut := runCLI(append([]string{"users", "--policy", "apps/admin"}, dirs...)...)
	g.Expect(code).To(BeZero(), errOut)
	g.Expect(out).To(MatchRegexp(`(?m)^` + ana + `\s+` + provider + `\s+totp\s`))
	code, out, errOut = runCLI(append([]string{"unlock", ana}, dirs...)...)
	g.Expect(code).To(BeZero(), errOut)
	g.Expect(out).To(ContainSubstring("unlocked user"))
	code, out, errOut = runCLI(append([]string{"reset", ana, "--factor", "totp"}, dirs...)...)
	g.Expect(code).To(BeZero(), errOut)
	g.Expect(out).To(ContainSubstring("reset user"))
	code, out, _ = runCLI(append([]string{"users"}, dirs...)...)
	g.Expect(code).To(BeZero())
	g.Expect(out).NotTo(ContainSubstring(ana), "nothing left to list")
}
