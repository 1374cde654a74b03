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
	for _, name := range []string{
		"buffer_monasca_aggregate.md", "processor_monasca_aggregate.md", "processor_monasca_record_store.md",
		"input_kafka.md", "output_kafka.md", "metrics_prometheus.md", "resource_kafka_state_stores.md",
	} {
		if _, ok := docs[name]; !ok {
			t.Errorf("%s was not rendered: is its plugin still registered?", name)
		}
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
