package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// runCLI runs the binary's command line in-process from the repository root
// and returns its exit code and what it printed.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	t.Chdir(filepath.Join("..", ".."))
	stdout, stderr := os.Stdout, os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout, os.Stderr = w, w
	done := make(chan []byte)
	go func() {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r)
		done <- buf.Bytes()
	}()
	opts := append(cliOptions(), service.CLIOptSetArgs(append([]string{"monasca-connect"}, args...)...))
	code, runErr := service.RunCLIToCode(context.Background(), opts...)
	os.Stdout, os.Stderr = stdout, stderr
	_ = w.Close()
	out := string(<-done)
	if runErr != nil {
		out += "\n" + runErr.Error()
	}
	return code, out
}

// TestShippedPipelines runs the `monasca-connect test` unit tests of every
// shipped pipeline, so `go test ./...` covers them.
func TestShippedPipelines(t *testing.T) {
	code, out := runCLI(t, "test", "./pipelines/...")
	if code != 0 {
		t.Fatalf("monasca-connect test ./pipelines/... exited %d:\n%s", code, out)
	}
	for _, p := range []string{"monasca-aggregation.yaml", "monasca-transform.yaml", "record-store.yaml"} {
		if !strings.Contains(out, "Test 'pipelines/"+p+"' succeeded") {
			t.Errorf("the tests of pipelines/%s did not run:\n%s", p, out)
		}
	}
}

// TestShippedPipelinesLint lints every shipped pipeline with the plugins
// compiled in.
func TestShippedPipelinesLint(t *testing.T) {
	var configs []string
	for _, pattern := range []string{"*.yaml", "scale-out/*.yaml"} {
		paths, err := filepath.Glob(filepath.Join("..", "..", "pipelines", pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if !strings.HasSuffix(p, "_benthos_test.yaml") && !strings.HasSuffix(p, "specifications.yaml") {
				rel, _ := filepath.Rel(filepath.Join("..", ".."), p)
				configs = append(configs, rel)
			}
		}
	}
	if len(configs) < 6 {
		t.Fatalf("not every pipeline found: %v", configs)
	}
	code, out := runCLI(t, append([]string{"lint"}, configs...)...)
	if code != 0 {
		t.Fatalf("lint exited %d:\n%s", code, out)
	}
}

// TestPluginsAreListed checks that the binary carries our plugins beside
// Benthos' own.
func TestPluginsAreListed(t *testing.T) {
	code, out := runCLI(t, "list", "buffers", "processors", "inputs", "outputs")
	if code != 0 {
		t.Fatalf("list exited %d:\n%s", code, out)
	}
	for _, want := range []string{"monasca_aggregate", "monasca_record_store", "kafka", "generate", "stdout"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q", want)
		}
	}
}

// TestNoConnectModule: the binary links no package of
// github.com/redpanda-data/connect, part of which is under the Redpanda
// Community License, not an open-source licence.
func TestNoConnectModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 || !strings.Contains(string(out), "github.com/redpanda-data/benthos/v4/public/service") {
		t.Fatalf("go list -deps listed %d packages, without benthos: not the binary's dependencies", len(deps))
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/redpanda-data/connect") {
			t.Errorf("the binary links %s", d)
		}
	}
	mod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mod), "github.com/redpanda-data/connect") {
		t.Error("go.mod requires github.com/redpanda-data/connect")
	}
}

// TestContainerMemoryLimit: the cgroup limit is read from the first file
// that exists; "max" and cgroup v1's "unlimited" value mean none.
func TestContainerMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v2, max, v1 := write("v2", "268435456\n"), write("max", "max\n"), write("v1", "9223372036854771712\n")
	missing := filepath.Join(dir, "missing")
	if got, ok := containerMemoryLimit(missing, v2); !ok || got != 256<<20 {
		t.Errorf("v2 limit: %d, %v", got, ok)
	}
	for _, p := range []string{max, v1, missing} {
		if got, ok := containerMemoryLimit(p); ok {
			t.Errorf("%s: limit %d, want none", filepath.Base(p), got)
		}
	}
}
