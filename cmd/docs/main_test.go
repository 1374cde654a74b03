package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCommittedDocsAreCurrent fails when a plugin's spec changed and
// `go run ./cmd/docs` was not run.
func TestCommittedDocsAreCurrent(t *testing.T) {
	docs, err := render()
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 3 {
		t.Fatalf("rendered only %d plugins", len(docs))
	}
	dir := filepath.Join("..", "..", "docs", "plugins")
	for name, want := range docs {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("docs/plugins/%s is missing or stale: run go run ./cmd/docs", name)
		}
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := docs[f.Name()]; !ok {
			t.Errorf("docs/plugins/%s documents no plugin", f.Name())
		}
	}
}
