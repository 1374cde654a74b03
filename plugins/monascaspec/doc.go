// Package monascaspec loads the specification languages of the two Monasca
// aggregation services that monasca-connect replaces and compiles both into
// the one plan the engine runs, a []windowagg.Rule:
//
//   - monasca-aggregator's aggregation-specifications.yaml
//     (ParseAggregationSpecs, LoadAggregationSpecs);
//   - monasca-transform's pre_transform_specs and transform_specs
//     (ParseTransformSpecs, LoadTransformSpecs): the pre-transform specs
//     become recordstore.Specs, which turn metrics into records, and each
//     transform spec a rule over those records, its usage component
//     (RegisterUsage), setters and insert step compiled into the rule's
//     function, combiner, rollup and namer.
//
// Everything is checked when a file is loaded, never at run time: an unknown
// function, a missing field or an inconsistent rollup is an error that names
// the file, the line, the specification and the field. A loader reports every
// problem of a file at once (errors.Join), so an operator fixes it in one
// pass, and it returns rules only when the whole file is valid. Warnings cover
// what the original services silently accepted but probably did not mean,
// such as unknown keys, and never stop a load.
package monascaspec
