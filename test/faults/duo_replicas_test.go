//go:build e2e

package faults

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duotest"
	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// The users who answer Duo pushes here: each approves at once (no waiting
// answer first), and each subtest has its own, so that the per-user limits
// of pushes and calls to Duo do not couple them.
const (
	duoUserSequential = "duo-ana@example.com"
	duoUserRaced      = "duo-ben@example.com"
)

// duoRule sends /duo/... to the Duo provider; it goes before the rules of
// objectsYAML.
const duoRule = `  - name: duo
    when: request.path.startsWith("/duo")
    action: RequireMFA
    multifactor: {providers: [duo]}
`

// newDuoServer starts the Duo Auth API test server with the users above.
func newDuoServer(t *testing.T) *duotest.Server {
	phone := duotest.Device{
		ID: "DPFZRS9FB0D46QFTM891", Type: "phone", Number: "XXX-XXX-0100", DisplayName: "iOS (XXX-XXX-0100)",
		Capabilities: []string{"auto", "push", "sms", "phone", "mobile_otp"},
	}
	var opts []duotest.Option
	for _, u := range []string{duoUserSequential, duoUserRaced} {
		opts = append(opts, duotest.WithUser(duotest.User{Username: u, Devices: []duotest.Device{phone}, Push: duotest.PushApprove}))
	}
	return duotest.NewServer(t, opts...)
}

// duoObjectsYAML is the Duo provider apps/duo of the test server, trusted
// through its CA in the credentials Secret.
func duoObjectsYAML(s *duotest.Server) string {
	return `---
apiVersion: v1
kind: Secret
metadata: {name: duo-credentials, namespace: apps}
stringData:
  ikey: ` + strconv.Quote(s.IKey()) + `
  skey: ` + strconv.Quote(s.SKey()) + `
  ca.crt: ` + strconv.Quote(s.CAPEM()) + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: {name: duo, namespace: apps}
spec:
  type: duo
  duo:
    apiHost: "` + s.APIHost() + `"
    integrationKeyRef: {name: duo-credentials, key: ikey}
    secretKeyRef: {name: duo-credentials, key: skey}
    caBundleRef: {name: duo-credentials, key: ca.crt}
`
}

// duoApprovedPush opens the Duo page for b on server base, sends a push
// and returns the waiting page's form; the user has approved the push.
func duoApprovedPush(t *testing.T, b *browser, base string) harness.Form {
	t.Helper()
	g := NewWithT(t)
	p := b.challenge(t, base, rdFor("/duo/reports"))
	g.Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)
	p = b.submit(t, base, p.FormWith(t, "device"), nil)
	g.Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)
	return p.FormWith(t, "tx")
}

// sameBrowser is b before it signed in, from another address: its
// cookies (the CSRF one, to which the sealed push is bound), no session.
func sameBrowser(b *browser, base string) *browser {
	u, _ := url.Parse(base + "/")
	other := newBrowser(b.user)
	other.jar.SetCookies(u, b.jar.Cookies(u))
	return other
}

// duoOutcome names what a Duo check form got, for counting.
func duoOutcome(p *harness.Page) string {
	switch {
	case p.Status == http.StatusSeeOther && p.Header.Get("Location") == rdFor("/duo/reports"):
		return "accepted"
	case p.Status == http.StatusForbidden && strings.Contains(p.Body, "This push was already used to sign in."):
		return "used"
	case p.Status == http.StatusServiceUnavailable && strings.Contains(p.Body, "Please try again"):
		return "try-again"
	}
	return fmt.Sprintf("status %d", p.Status)
}

// sessions counts the browsers let in to /duo/reports by the server each
// one talked to.
func sessions(t *testing.T, browsers []*browser, servers []string) int {
	in := 0
	for i, b := range browsers {
		if b.auth(t, servers[i%len(servers)], "/duo/reports").Status == http.StatusOK {
			in++
		}
	}
	return in
}

// testDuoPushCompletedOnceIsRefusedElsewhere: the waiting page's form of
// an approved push, completed on one replica, is sent again by the same
// browser to the others, which never saw it: Duo still says approved, the
// store says used.
func testDuoPushCompletedOnceIsRefusedElsewhere(t *testing.T, servers []string) {
	g := NewWithT(t)
	b := newBrowser(duoUserSequential)
	form := duoApprovedPush(t, b, servers[0])
	replays := []*browser{sameBrowser(b, servers[0]), sameBrowser(b, servers[0])}

	p := b.submit(t, servers[0], form, nil)
	g.Expect(duoOutcome(p)).To(Equal("accepted"), "%s", p.Body)
	for i, s := range servers[1:] {
		p := replays[i].submit(t, s, form, nil)
		g.Expect(duoOutcome(p)).To(Equal("used"), "replayed on %s: %s", s, p.Body)
		g.Expect(p.Header.Values("Set-Cookie")).NotTo(ContainElement(HavePrefix("mfa_session=")))
	}
	g.Expect(sessions(t, append([]*browser{b}, replays...), servers)).To(Equal(1), "one session in all")
}

// testDuoPushRacedIssuesOneSession: the form of one approved push sent to
// every replica at once, several times each, issues one session.
func testDuoPushRacedIssuesOneSession(t *testing.T, servers []string) {
	g := NewWithT(t)
	b := newBrowser(duoUserRaced)
	form := duoApprovedPush(t, b, servers[0])
	n := racersPerServer * len(servers)
	browsers := make([]*browser, n)
	for i := range browsers {
		browsers[i] = sameBrowser(b, servers[0])
	}
	outcomes := make([]string, n)
	race(n, func(i int) {
		outcomes[i] = duoOutcome(browsers[i].submit(t, servers[i%len(servers)], form, nil))
	})
	counts := map[string]int{}
	for _, o := range outcomes {
		counts[o]++
	}
	t.Logf("%d submissions of one approved push: %v", n, counts)
	g.Expect(counts["accepted"]).To(Equal(1), "accepted exactly once: %v", outcomes)
	// The others find it used or, having lost the compare-and-swap race
	// too often, are asked to try again, with nothing issued.
	g.Expect(counts["used"]+counts["try-again"]).To(Equal(n-1), "%v", outcomes)
	g.Expect(sessions(t, browsers, servers)).To(Equal(1), "one session in all")
}
