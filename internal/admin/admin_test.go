package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/revocation"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/store/storetest"
)

var (
	testEnv *envtest.Environment
	cfg     *rest.Config
	root    string
)

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	root = filepath.Join(wd, "..", "..")
	dir, err := storetest.AssetsDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEnv = &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	if cfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = testEnv.Stop()
	os.Exit(code)
}

const (
	ns       = "mfa-system"
	provider = "apps/google-authenticator"
	ana      = "ana@example.com"
	bob      = "bob@example.com"
)

func adminClient(t *testing.T) client.Client {
	scheme := runtime.NewScheme()
	NewWithT(t).Expect(corev1.AddToScheme(scheme)).To(Succeed())
	NewWithT(t).Expect(v1alpha1.AddToScheme(scheme)).To(Succeed())
	NewWithT(t).Expect(rbacv1.AddToScheme(scheme)).To(Succeed())
	c, err := client.New(rest.CopyConfig(cfg), client.Options{Scheme: scheme})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return c
}

var setUp bool

// setUpCluster creates the namespaces, the provider, the helpdesk RBAC
// of config/rbac and two enrolled users (ana locked out).
func setUpCluster(t *testing.T) client.Client {
	g := NewWithT(t)
	c := adminClient(t)
	if setUp {
		return c
	}
	ctx := context.Background()
	for _, n := range []string{ns, "apps"} {
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}})).To(Succeed())
	}
	p := &v1alpha1.MFAProvider{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "google-authenticator"},
		Spec: v1alpha1.MFAProviderSpec{Type: "totp"}}
	g.Expect(c.Create(ctx, p)).To(Succeed())
	raw, err := os.ReadFile(filepath.Join(root, HelpdeskRBAC))
	g.Expect(err).NotTo(HaveOccurred())
	docs := strings.Split(string(raw), "\n---\n")
	role, crole := &rbacv1.Role{}, &rbacv1.ClusterRole{}
	g.Expect(yaml.Unmarshal([]byte(docs[0]), role)).To(Succeed())
	g.Expect(yaml.Unmarshal([]byte(docs[1]), crole)).To(Succeed())
	g.Expect(c.Create(ctx, role)).To(Succeed())
	g.Expect(c.Create(ctx, crole)).To(Succeed())
	subject := []rbacv1.Subject{{Kind: "User", Name: "helpdesk"}}
	g.Expect(c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "helpdesk"},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}, Subjects: subject})).To(Succeed())
	g.Expect(c.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "helpdesk"},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: crole.Name}, Subjects: subject})).To(Succeed())

	st := store.NewSecretStore(c, ns)
	for _, u := range []string{ana, bob} {
		_, err := st.Update(ctx, store.Key{Provider: provider, User: u}, func(e *store.Enrollment) error {
			e.TOTP = &store.TOTPEnrollment{SealedSecret: []byte("sealed"), Digits: 6, PeriodSeconds: 30, Algorithm: "SHA1",
				LastStep: time.Now().Unix() / 30, Created: time.Now().Add(-time.Hour).UTC()}
			e.RecoveryCodeHashes = []string{"h1", "h2"}
			if u == ana {
				e.LockedUntil, e.Lockouts = time.Now().Add(time.Hour), 1
			}
			if u == bob {
				now := time.Now()
				for i, until := range []time.Duration{time.Hour, 2 * time.Hour, -time.Minute} {
					e.Browsers = append(e.Browsers, store.RememberedBrowser{ID: fmt.Sprintf("%032x", i), Created: now.Add(-3 * time.Hour),
						Issued: now.Add(-3 * time.Hour), Expires: now.Add(until)})
				}
			}
			return nil
		})
		g.Expect(err).NotTo(HaveOccurred())
	}
	setUp = true
	return c
}

// kubeconfigFor writes a kubeconfig of an envtest user.
func kubeconfigFor(t *testing.T, name string) string {
	g := NewWithT(t)
	u, err := testEnv.AddUser(envtest.User{Name: name}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	kc, err := u.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(os.WriteFile(path, kc, 0o600)).To(Succeed())
	return path
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(context.Background(), "kubectl mfa", args, &out, &errb)
	return code, out.String(), errb.String()
}

func auditLines(s string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["audit"] == true {
			out = append(out, m)
		}
	}
	return out
}

func TestHelpdeskCommandsWithTheHelpdeskRole(t *testing.T) {
	g := NewWithT(t)
	c := setUpCluster(t)
	ctx := context.Background()
	kc := kubeconfigFor(t, "helpdesk")

	code, out, errOut := runCLI("users", "--kubeconfig", kc)
	t.Log(out)
	g.Expect(code).To(BeZero(), errOut)
	g.Expect(out).To(MatchRegexp(`(?m)^USER\s+PROVIDER\s+FACTOR\s+CREATED\s+LAST USED\s+LOCKED UNTIL\s+BROWSERS$`))
	g.Expect(out).To(MatchRegexp(`(?m)^` + ana + `\s+` + provider + `\s+totp\s+\d{4}-\S+Z\s+\d{4}-\S+Z\s+\d{4}-\S+Z\s+0$`))
	g.Expect(out).To(MatchRegexp(`(?m)^`+bob+`\s+`+provider+`\s+recovery-codes \(2 left\)\s+-\s+-\s+-\s+2$`), "two browsers remembered, one expired")

	code, out, errOut = runCLI("users", "--policy", "apps/missing", "--kubeconfig", kc)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("reading MFAPolicy apps/missing"))

	code, out, errOut = runCLI("unlock", ana, "--kubeconfig", kc)
	g.Expect(code).To(BeZero(), errOut)
	g.Expect(out).To(ContainSubstring("unlocked user"))
	e, err := store.NewSecretStore(c, ns).Get(ctx, store.Key{Provider: provider, User: ana})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.LockedUntil.IsZero()).To(BeTrue())
	g.Expect(e.TOTP).NotTo(BeNil(), "unlock keeps the enrolment")

	before := time.Now()
	code, out, errOut = runCLI("revoke", ana, "--kubeconfig", kc)
	g.Expect(code).To(BeZero(), errOut)
	var cm corev1.ConfigMap
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: revocation.ShardName(ana)}, &cm)).To(Succeed())
	g.Expect(fmt.Sprint(cm.Data)).To(ContainSubstring(ana))
	lines := auditLines(errOut)
	g.Expect(lines).To(HaveLen(1))
	g.Expect(lines[0]).To(HaveKeyWithValue("event", "revocation"))
	g.Expect(lines[0]).To(HaveKeyWithValue("user", ana))
	g.Expect(lines[0]).To(HaveKeyWithValue("provider", provider))
	g.Expect(lines[0]).To(HaveKeyWithValue("outcome", "success"))
	g.Expect(lines[0]).To(HaveKeyWithValue("actor", "helpdesk"))
	g.Expect(lines[0]).To(HaveKeyWithValue("user_agent", "kubectl-mfa"))
	g.Expect(lines[0]).To(HaveKey("client_ip"))
	g.Expect(lines[0]).To(HaveKey("policy"))

	code, out, errOut = runCLI("reset", ana, "--provider", provider, "--kubeconfig", kc)
	g.Expect(code).To(BeZero(), errOut)
	g.Expect(out).To(ContainSubstring("the user enrols again at the next visit"))
	e, err = store.NewSecretStore(c, ns).Get(ctx, store.Key{Provider: provider, User: ana})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.TOTP).To(BeNil())
	g.Expect(e.RecoveryCodeHashes).To(BeEmpty())
	lines = auditLines(errOut)
	g.Expect(lines).To(HaveLen(2))
	g.Expect(lines[0]).To(HaveKeyWithValue("event", "reset"))
	g.Expect(lines[1]).To(HaveKeyWithValue("event", "revocation"))
	other, err := store.NewSecretStore(c, ns).Get(ctx, store.Key{Provider: provider, User: bob})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(other.TOTP).NotTo(BeNil(), "another user keeps the enrolment")

	var events corev1.EventList
	g.Expect(c.List(ctx, &events, client.InNamespace("apps"))).To(Succeed())
	reasons := map[string]string{}
	for _, ev := range events.Items {
		g.Expect(ev.InvolvedObject.Kind).To(Equal("MFAProvider"))
		g.Expect(ev.InvolvedObject.Name).To(Equal("google-authenticator"))
		g.Expect(ev.LastTimestamp.Time).To(BeTemporally(">=", before.Truncate(time.Second)))
		reasons[ev.Reason] = ev.Message
	}
	g.Expect(reasons).To(HaveKey("MFAUnlocked"))
	g.Expect(reasons).To(HaveKey("MFARevoked"))
	g.Expect(reasons).To(HaveKeyWithValue("MFAReset", ContainSubstring("by helpdesk")))
}

func TestCommandsRefuseACallerWithoutTheHelpdeskRole(t *testing.T) {
	setUpCluster(t)
	kc := kubeconfigFor(t, "intern")
	for _, args := range [][]string{{"users"}, {"reset", bob}, {"revoke", bob}, {"unlock", bob}} {
		t.Run(args[0], func(t *testing.T) {
			g := NewWithT(t)
			code, _, errOut := runCLI(append(args, "--kubeconfig", kc)...)
			t.Log(errOut)
			g.Expect(code).To(Equal(1))
			g.Expect(errOut).To(ContainSubstring("not allowed"))
			g.Expect(errOut).To(ContainSubstring(`User "intern" cannot`))
			g.Expect(errOut).To(ContainSubstring(HelpdeskRBAC))
			g.Expect(auditLines(errOut)).To(BeEmpty(), "nothing done, nothing audited")
		})
	}
}

func TestUsageErrors(t *testing.T) {
	g := NewWithT(t)
	for _, args := range [][]string{{"reset"}, {"revoke", "a", "b"}, {"users", "x"}, {"frobnicate"}, {"revoke", "a", "--factor", "totp"}, {"reset", "a", "--provider", "nope"}} {
		code, _, errOut := runCLI(args...)
		g.Expect(code).To(Equal(2), "%v: %s", args, errOut)
	}
	// An unknown factor is refused before anything is read.
	_, err := (&Admin{}).Reset(context.Background(), ana, "", "sms")
	g.Expect(err).To(MatchError(ContainSubstring(`unknown factor "sms": one of totp, webauthn, recovery-codes`)))
}
