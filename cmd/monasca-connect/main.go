// Command monasca-connect is a Benthos binary for OpenStack Monasca: the
// pure and io components of Benthos plus monasca-connect's own plugins: the
// aggregation buffer and processors (package components), the Kafka input,
// output and state store (package kafka) and the Prometheus exporter
// (package prometheus).
//
// Run a pipeline with `monasca-connect run pipelines/monasca-aggregation.yaml`;
// `monasca-connect list`, `lint` and `test` work as in Redpanda Connect.
package main

import (
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	_ "github.com/monasca-connect/monasca-connect/plugins/components"
	_ "github.com/monasca-connect/monasca-connect/plugins/kafka"
	_ "github.com/monasca-connect/monasca-connect/plugins/prometheus"
)

// limitMemory sets the Go runtime's soft memory limit to 90 % of the
// container's memory limit (cgroup v2 memory.max, or v1
// memory.limit_in_bytes) when GOMEMLIMIT is not set. Without it the heap
// may grow to twice what is live before the collector runs, and a pod
// limited to 256 MiB can be killed while its live data is a third of that.
// Outside a container with a limit nothing changes.
func limitMemory() {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return
	}
	if limit, ok := containerMemoryLimit("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); ok {
		debug.SetMemoryLimit(limit / 10 * 9)
	}
}

// containerMemoryLimit reads the memory limit from the first of the cgroup
// files that exists; "max" or an absurdly high value means none.
func containerMemoryLimit(paths ...string) (int64, bool) {
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		limit, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		return limit, err == nil && limit > 0 && limit < 1<<60
	}
	return 0, false
}

// Version and DateBuilt are set at build time with
// -ldflags "-X main.Version=... -X main.DateBuilt=...".
var (
	Version   = ""
	DateBuilt = ""
)

func main() {
	defaultInstanceID()
	limitMemory()
	service.RunCLI(context.Background(), cliOptions()...)
}

// defaultInstanceID sets INSTANCE_ID, the static group membership the
// shipped pipelines give their Kafka input, to the host name when it is
// unset: a restarted pod or host rejoins under its old name and gets its
// partitions back at once instead of after the session timeout.
func defaultInstanceID() {
	if _, ok := os.LookupEnv("INSTANCE_ID"); ok {
		return
	}
	if host, err := os.Hostname(); err == nil {
		_ = os.Setenv("INSTANCE_ID", host)
	}
}

func cliOptions() []service.CLIOptFunc {
	return []service.CLIOptFunc{
		service.CLIOptSetBinaryName("monasca-connect"),
		service.CLIOptSetProductName("monasca-connect"),
		service.CLIOptSetVersion(version(), dateBuilt()),
		// The full schema has the top-level lists of custom resources
		// (kafka_state_stores), which the default one lacks: lint, test
		// and run accept them only then.
		service.CLIOptSetMainSchemaFrom(func() *service.ConfigSchema {
			return service.GlobalEnvironment().FullConfigSchema(version(), dateBuilt())
		}),
		service.CLIOptSetDocumentationURL("https://docs.redpanda.com/redpanda-connect"),
		service.CLIOptSetDefaultConfigPaths(
			"monasca-connect.yaml",
			"/etc/monasca-connect/config.yaml",
			"/etc/monasca-connect.yaml",
		),
	}
}

// dateBuilt falls back to the commit time recorded by the Go toolchain.
func dateBuilt() string {
	if DateBuilt != "" {
		return DateBuilt
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.time" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// version falls back to the module version recorded by `go install`, or
// "dev" for a plain `go build` or `go run` of a checkout.
func version() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}
