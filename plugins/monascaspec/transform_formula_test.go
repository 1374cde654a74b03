package monascaspec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monasca-connect/monasca-connect/internal/conformancedata"
)

// utilFormula is fetch_quantity_util's join as a calculate_formula spec.
const utilFormula = `root = if this.idle == 0 { this.total } else { (100 - this.idle) * this.total / 100 }`

// TestCalculateFormulaIsFetchQuantityUtil: calculate_formula with
// fetch_quantity_util's formula gives case B's values, from the records of
// both inputs.
func TestCalculateFormulaIsFetchQuantityUtil(t *testing.T) {
	names := []string{"cpu.total_logical_cores", "cpu.idle_perc"}
	records := envelopeRecords(t, "data/cpu_kafka_data/cpu_kafka_data.jsonl", "cpu_util_all", names)
	dir := filepath.Join(conformancedata.Dir(t), "specs", "cases", "B")
	for op, value := range map[string]float64{"latest": 7.7700000000000005, "oldest": 9.52, "avg": 7.134214285714285} {
		t.Run(op, func(t *testing.T) {
			util, err := os.ReadFile(filepath.Join(dir, "transform_specs_"+op+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			transform := strings.NewReplacer(
				`"usage":"fetch_quantity_util"`, `"usage":"calculate_formula"`,
				`"usage_fetch_util_quantity_event_type":"cpu.total_logical_cores","usage_fetch_util_idle_perc_event_type":"cpu.idle_perc"`,
				`"usage_formula_inputs":{"total":"cpu.total_logical_cores","idle":"cpu.idle_perc"},"usage_formula":"`+utilFormula+`"`,
			).Replace(string(util))
			pre, err := os.ReadFile(filepath.Join(dir, "pre_transform_specs.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			specs, warnings, err := ParseTransformSpecs(pre, []byte(transform), "pre.json", "transform.json", TransformOptions{})
			if err != nil || len(warnings) > 0 || !strings.Contains(transform, "calculate_formula") {
				t.Fatalf("%v %v\n%s", err, warnings, transform)
			}
			// The records of the totals and of the idle percentages, 13 each.
			check(t, runRules(t, specs.Rules, records...), want{"cpu.utilized_logical_cores_agg", hourly, value, 26, "2016-03-07 16:09:19", "2016-03-07 16:10:49"})
		})
	}
}

func TestCalculateFormulaErrors(t *testing.T) {
	const at = `transform.json:1: specification 1 ("m1"): aggregation_params_map.`
	formula := func(group []string, inputs map[string]string, formula string) string {
		return testTransform(t, func(_, params, pipeline map[string]any) {
			pipeline["usage"] = "calculate_formula"
			params["aggregation_group_by_list"] = group
			if inputs != nil {
				params["usage_formula_inputs"] = inputs
			}
			if formula != "" {
				params["usage_formula"] = formula
			}
		})
	}
	for _, c := range []struct {
		name, transform string
		want            []string
	}{
		{"missing everything", formula([]string{"host"}, nil, ""), []string{
			at + `aggregation_group_by_list: must include "event_type" for calculate_formula, which tells the inputs' records apart`,
			at + `usage_formula_inputs: missing; calculate_formula needs an object of input names to event types`,
			at + `usage_formula: missing; calculate_formula needs a Bloblang mapping of the inputs that assigns root a number`,
		}},
		{"bad inputs", formula([]string{"event_type"}, map[string]string{"1a": "x", "b": "", "c": "y", "d": "y"}, "this.c"), []string{
			at + `usage_formula_inputs: input name "1a" must be letters, digits and _, not starting with a digit: the formula reads it as this.<name>`,
			at + `usage_formula_inputs: input "b" has no event type`,
			at + `usage_formula_inputs: event type "y" is given to two inputs`,
		}},
		{"formula reading an undeclared input", formula([]string{"event_type"}, map[string]string{"a": "x"}, "this.a / this.b"), []string{
			at + `usage_formula: reads this.b, which is not an input; the inputs are "a"`,
		}},
		{"formula that does not parse", formula([]string{"event_type"}, map[string]string{"a": "x"}, "root = this.a +"), []string{
			at + `usage_formula: is not a valid Bloblang mapping: expected query, but reached end of input`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			specs, _, err := ParseTransformSpecs([]byte(testPre), []byte(c.transform), "pre.json", "transform.json", TransformOptions{})
			if err == nil || specs != nil {
				t.Fatalf("no error; want:\n%s", strings.Join(c.want, "\n"))
			}
			assertContainsInOrder(t, "errors", errorLines(err), c.want)
		})
	}
}
