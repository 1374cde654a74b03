// Package harness runs monasca-connect end to end on one machine, for the
// end-to-end tests (tests/e2e) and the benchmark (tests/bench): building
// the binary, an in-process Kafka cluster (kfake) on loopback, starting,
// stopping and killing pipeline processes with their logs, the
// environment the shipped pipelines read, Prometheus text scraping, the
// process's memory and CPU from /proc, offsets, polling, and reading the
// checkpoints the pipelines save through the code that writes them.
//
// Functions return errors and processes are stopped by their callers, so
// that a plain main can use the package as well as a test; the tests wrap
// what they use in helpers that fail the test.
package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// RepoRoot returns the root of the module the working directory is in,
// where pipelines/ lives.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	// Without a go command in the PATH, as when running a prebuilt test
	// binary.
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Build builds the monasca-connect binary of the module at root to out.
func Build(root, out string) error {
	build := exec.Command("go", "build", "-o", out, "./cmd/monasca-connect")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building monasca-connect: %w\n%s", err, b)
	}
	return nil
}

// FreeAddr returns a loopback address with a port that was free just now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Sleep waits d or until ctx ends, and returns ctx's error if it ended.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Poll checks cond every interval until it holds, for at most limit or
// until ctx ends; it reports whether cond held.
func Poll(ctx context.Context, limit, every time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for !cond() {
		if Sleep(ctx, every) != nil {
			return false
		}
	}
	return true
}

// WaitUntil polls cond every 10ms, as Poll does.
func WaitUntil(ctx context.Context, limit time.Duration, cond func() bool) bool {
	return Poll(ctx, limit, 10*time.Millisecond, cond)
}
