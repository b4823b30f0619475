// Package examples reads the YAML examples of a Markdown file (README.md),
// so that tests apply and evaluate what the documentation shows, as a
// reader would copy it.
package examples

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Block is one ```yaml block of the file.
type Block struct {
	// Line is the line of the opening fence, 1-based.
	Line int
	// Documents are the block's YAML documents as JSON, in order, empty
	// ones left out.
	Documents [][]byte
}

// YAML returns every ```yaml block of a Markdown file.
func YAML(path string) ([]Block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		blocks []Block
		text   strings.Builder
		open   int // line of the open ```yaml fence, 0 outside one
		inCode bool
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fence := strings.HasPrefix(strings.TrimSpace(line), "```")
		switch {
		case fence && !inCode:
			inCode = true
			if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "```")) == "yaml" {
				open = n
			}
		case fence && inCode:
			inCode = false
			if open != 0 {
				docs, err := documents(text.String())
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %w", path, open, err)
				}
				blocks = append(blocks, Block{Line: open, Documents: docs})
			}
			open = 0
			text.Reset()
		case open != 0:
			text.WriteString(line)
			text.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if inCode {
		return nil, fmt.Errorf("%s: a code block is not closed", path)
	}
	return blocks, nil
}

// documents splits YAML text into its documents, as JSON.
func documents(text string) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := utilyaml.ToJSON(doc)
		if err != nil {
			return nil, err
		}
		if j = bytes.TrimSpace(j); len(j) > 0 && !bytes.Equal(j, []byte("null")) {
			docs = append(docs, j)
		}
	}
}
