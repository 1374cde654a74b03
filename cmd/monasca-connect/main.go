// Command monasca-connect is a Redpanda Connect binary for OpenStack Monasca:
// the stock Kafka inputs and outputs, the Prometheus exporter and the pure and
// io components, plus monasca-connect's own plugins (package components).
//
// Run a pipeline with `monasca-connect run pipelines/monasca-aggregation.yaml`;
// `monasca-connect list`, `lint` and `test` work as in Redpanda Connect.
package main

import (
	"context"
	"runtime/debug"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	_ "github.com/redpanda-data/connect/v4/public/components/kafka"
	_ "github.com/redpanda-data/connect/v4/public/components/prometheus"

	_ "github.com/monasca-connect/monasca-connect/plugins/components"
)

// Version and DateBuilt are set at build time with
// -ldflags "-X main.Version=... -X main.DateBuilt=...".
var (
	Version   = ""
	DateBuilt = ""
)

func main() {
	service.RunCLI(context.Background(), cliOptions()...)
}

func cliOptions() []service.CLIOptFunc {
	return []service.CLIOptFunc{
		service.CLIOptSetBinaryName("monasca-connect"),
		service.CLIOptSetProductName("monasca-connect"),
		service.CLIOptSetVersion(version(), dateBuilt()),
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
