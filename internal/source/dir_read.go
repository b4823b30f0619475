package source

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// readConfigDir reads every *.yaml, *.yml and *.json file of dir (not
// sub-directories, not hidden files): one or more documents each, of kind
// MFAPolicy, MFAProvider, Secret (data or stringData), Namespace (its
// labels, for allowedNamespaceSelector) or List. A file that
// does not parse refuses the whole directory; other kinds are skipped.
func readConfigDir(dir string) (*Objects, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []configFile
	for _, e := range entries {
		name := e.Name()
		ext := strings.ToLower(filepath.Ext(name))
		if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		f := readConfigFile(filepath.Join(dir, name))
		if f.err == nil && f.data == nil {
			continue // a directory
		}
		files = append(files, f)
		if f.err != nil {
			break // nothing after it is read
		}
	}
	convertDocuments(files)
	objs := NewObjects()
	for i := range files {
		if err := objs.addConverted(&files[i]); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// configFile is a file of the config directory and its documents.
type configFile struct {
	path string
	data []byte
	// err is why the file cannot be read; it refuses the directory.
	err  error
	docs []configDocument
}

// configDocument is one document of a file, in YAML as read and in JSON
// once converted; err, when set, is the file's error at this document
// (it ends the file).
type configDocument struct {
	number   int
	yaml, js []byte
	err      error
}

// readConfigFile reads a file within the size limit; data is nil for a
// directory.
func readConfigFile(path string) configFile {
	f := configFile{path: path}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		f.err = err
	case fi.IsDir():
	case fi.Size() > maxConfigFileBytes:
		f.err = fmt.Errorf("%s: larger than %d bytes", path, maxConfigFileBytes)
	default:
		f.data, f.err = os.ReadFile(path)
		if f.data == nil && f.err == nil {
			f.data = []byte{}
		}
	}
	return f
}

// splitDocuments splits f's data into its non-empty documents, up to the
// first that cannot be read.
func (f *configFile) splitDocuments() {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(f.data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			f.docs = append(f.docs, configDocument{number: doc, err: err})
			return
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		f.docs = append(f.docs, configDocument{number: doc, yaml: raw})
	}
}

// convertDocuments splits the files into documents and converts them to
// JSON on every CPU: YAML parsing is most of the time a large
// directory takes to load.
func convertDocuments(files []configFile) {
	var docs []*configDocument
	for i := range files {
		f := &files[i]
		if f.err != nil {
			continue
		}
		f.splitDocuments()
		for j := range f.docs {
			if f.docs[j].err == nil {
				docs = append(docs, &f.docs[j])
			}
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(docs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(docs) {
					return
				}
				d := docs[i]
				d.js, d.err = yaml.YAMLToJSON(d.yaml)
				d.yaml = nil
			}
		})
	}
	wg.Wait()
}

// AddFile adds the objects of a file: one or more YAML or JSON documents
// (see readConfigDir); path names the file in errors.
func (o *Objects) AddFile(path string, data []byte) error {
	files := []configFile{{path: path, data: data}}
	convertDocuments(files)
	return o.addConverted(&files[0])
}

// addConverted adds the objects of a converted file, in order; the first
// error (the file's, or its first document's) is returned.
func (o *Objects) addConverted(f *configFile) error {
	if f.err != nil {
		return f.err
	}
	for i := range f.docs {
		d := &f.docs[i]
		if d.err != nil {
			return fmt.Errorf("%s: document %d: %w", f.path, d.number, d.err)
		}
		o.at = Origin{File: f.path, Document: d.number}
		if err := o.addObject(d.js); err != nil {
			return fmt.Errorf("%s: document %d: %w", f.path, d.number, err)
		}
	}
	return nil
}
