//go:build e2e

package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// TestDockerfileBuildsAsMakeRelease: without a Docker engine here, the
// Dockerfile is held to the flags make build and make release use: the
// same ldflags by default (make docker-build passes make's own), static,
// -trimpath, the same entrypoint, user and command as the released image.
func TestDockerfileBuildsAsMakeRelease(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	g.Expect(err).NotTo(HaveOccurred())
	df := string(b)
	m := regexp.MustCompile(`(?m)^ARG LDFLAGS="(.*)"$`).FindStringSubmatch(df)
	g.Expect(m).To(HaveLen(2), "the Dockerfile declares ARG LDFLAGS")
	cmd := exec.Command("make", "-s", "--no-print-directory", "print-LDFLAGS", "VERSION=$${VERSION}", "REVISION=$${REVISION}")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m[1]).To(Equal(strings.TrimSpace(string(out))))
	g.Expect(df).To(MatchRegexp(`CGO_ENABLED=0 GOOS=\$\{TARGETOS:-linux\} GOARCH=\$\{TARGETARCH\} \\\n\s+go build -trimpath -ldflags="\$\{LDFLAGS\}" -o mfa-operator \.`))
	g.Expect(df).To(ContainSubstring("USER 65532:65532"))
	g.Expect(df).To(ContainSubstring(`ENTRYPOINT ["/mfa-operator"]`))
	g.Expect(df).To(ContainSubstring(`CMD ["controller"]`))
}
