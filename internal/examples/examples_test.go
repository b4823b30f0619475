package examples

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

func TestYAMLReadsOnlyYAMLBlocks(t *testing.T) {
	g := NewWithT(t)
	md := "# Title\n\n```yaml\na: 1\n---\n# only a comment\n---\nb: [x]\n```\n\n```sh\nkubectl apply\n```\n\n```\nnot: yaml block\n```\n" +
		"Text.\n\n  ```yaml\n  c: true\n  ```\n"
	path := filepath.Join(t.TempDir(), "README.md")
	g.Expect(os.WriteFile(path, []byte(md), 0o600)).To(Succeed())
	blocks, err := YAML(path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(blocks).To(HaveLen(2))
	g.Expect(blocks[0].Line).To(Equal(3))
	g.Expect(blocks[0].Documents).To(HaveLen(2))
	g.Expect(string(blocks[0].Documents[0])).To(Equal(`{"a":1}`))
	g.Expect(string(blocks[0].Documents[1])).To(Equal(`{"b":["x"]}`))
	g.Expect(blocks[1].Line).To(Equal(20))
	g.Expect(string(blocks[1].Documents[0])).To(Equal(`{"c":true}`))
}

func TestYAMLRefusesAnUnclosedBlock(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "README.md")
	g.Expect(os.WriteFile(path, []byte("```yaml\na: 1\n"), 0o600)).To(Succeed())
	_, err := YAML(path)
	g.Expect(err).To(MatchError(ContainSubstring("not closed")))
}
