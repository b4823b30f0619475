package duo_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/duotest"
	"github.com/mfa-operator/mfa-operator/internal/version"
)

// libraryUserAgent is what duo_api_golang appends to the product token, as
// the package documentation and the README state it.
const libraryUserAgent = "duo_api_golang/0.3.0 ca_bundle/1.0 (ca_pinning=disabled)"

// libraryVersion is the version of duo_api_golang go.mod requires. (A
// test binary's build information lists no dependencies.)
func libraryVersion(t *testing.T) string {
	t.Helper()
	const path = "github.com/duosecurity/duo_api_golang"
	raw, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatalf("reading go.mod: %v", err)
	}
	version := ""
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "require" || f[0] == "replace") {
			f = f[1:]
		}
		if len(f) < 2 || f[0] != path {
			continue
		}
		if f[1] == "=>" || (len(f) > 2 && f[2] == "=>") {
			t.Fatalf("go.mod replaces %s: state the User-Agent of the replacement", path)
		}
		version = f[1]
	}
	if version == "" {
		t.Fatalf("go.mod does not require %s", path)
	}
	return version
}

// TestUserAgentNamesTheLibraryVersionGoModRequires: a new library version
// must come with the documented User-Agent, which Duo judges deprecated
// clients by.
func TestUserAgentNamesTheLibraryVersionGoModRequires(t *testing.T) {
	g := NewWithT(t)
	v := libraryVersion(t)
	g.Expect(libraryUserAgent).To(HavePrefix("duo_api_golang/"+strings.TrimPrefix(v, "v")+" "), "go.mod requires %s", v)
}

// TestEveryRequestCarriesTheUserAgent: every call, as the Duo test server
// receives it, carries the product token and the library's version.
func TestEveryRequestCarriesTheUserAgent(t *testing.T) {
	tests := []struct {
		name string
		opts []duo.Option
		want string
	}{
		{"the controller's default", nil, "mfa-operator/" + version.Version + " " + libraryUserAgent},
		{"the challenge server's", []duo.Option{duo.WithUserAgent("mfa-operator-webhook")}, "mfa-operator-webhook/" + version.Version + " " + libraryUserAgent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := duotest.NewServer(t)
			c := newClient(t, s, tt.opts...)
			ctx := context.Background()
			g.Expect(c.Check(ctx)).To(Succeed())
			_, err := c.Preauth(ctx, duotest.UserApprove, "192.0.2.10")
			g.Expect(err).NotTo(HaveOccurred())
			txid, err := c.Push(ctx, duo.PushRequest{Username: duotest.UserApprove})
			g.Expect(err).NotTo(HaveOccurred())
			pollPush(t, c, txid)
			_, err = c.Passcode(ctx, duotest.UserApprove, duotest.ValidPasscode, "")
			g.Expect(err).NotTo(HaveOccurred())

			reqs := s.Requests()
			g.Expect(reqs).To(HaveLen(4 + duotest.ApprovePolls + 1))
			for _, r := range reqs {
				g.Expect(r.UserAgent).To(Equal(tt.want), "%s %s", r.Method, r.Path)
			}
		})
	}
}
