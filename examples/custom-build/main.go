// Command custom-build is an example of a user's own monasca-connect build
// that adds an aggregation function and a monasca-transform usage component
// to the ones compiled in:
//
//   - the function "spread" (largest minus smallest value in the window),
//     usable as `function: spread` in monasca-aggregator specifications and
//     as a rollup function;
//   - the usage component "fetch_quantity_spread", usable in a transform
//     spec as `"usage": "fetch_quantity_spread"` with
//     `"usage_fetch_operation": "spread"`.
//
// Build and run it like monasca-connect itself:
//
//	go build -o my-monasca-connect ./examples/custom-build
//	./my-monasca-connect run pipelines/monasca-aggregation.yaml
package main

import (
	"context"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	_ "github.com/monasca-connect/monasca-connect/plugins/components"
	_ "github.com/monasca-connect/monasca-connect/plugins/kafka"
	"github.com/monasca-connect/monasca-connect/plugins/monascaspec"
	_ "github.com/monasca-connect/monasca-connect/plugins/prometheus"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// spread is the largest minus the smallest value of a window. A Function
// reads the window's running State (count, sum, min, max, first and last
// samples), which is what keeps every function mergeable across partitions.
type spread struct{}

func (spread) Name() string { return "spread" }
func (spread) Result(s *windowagg.State) (float64, bool) {
	return s.Max - s.Min, s.Count > 0
}

func init() {
	windowagg.RegisterFunction(spread{})
	monascaspec.RegisterUsage("fetch_quantity_spread", monascaspec.UsageComponent{
		Operations: []string{"spread"},
		Compile: func(*monascaspec.TransformSpec, monascaspec.TransformOptions) (monascaspec.UsagePlan, error) {
			return monascaspec.UsagePlan{Function: spread{}}, nil
		},
	})
}

func main() {
	service.RunCLI(context.Background(),
		service.CLIOptSetBinaryName("my-monasca-connect"),
		service.CLIOptSetProductName("my-monasca-connect"))
}
