// Command docs writes the reference documentation of monasca-connect's own
// plugins, rendered from their configuration specs as Redpanda Connect
// renders its own, to docs/plugins/ (one Markdown file per plugin):
//
//	go run ./cmd/docs
//
// Our plugins are those whose name starts with monasca_, and the kafka
// input and output, the kafka_state_stores resource and the prometheus
// metrics exporter. A test fails when the committed files differ from what
// the specs render.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/monasca-connect/monasca-connect/plugins/components"
	"github.com/monasca-connect/monasca-connect/plugins/kafka"
	_ "github.com/monasca-connect/monasca-connect/plugins/prometheus"
)

var asciidocTitle = regexp.MustCompile(`(?m)^== `)

// pluginPrefix marks our plugins among the stock ones of the environment.
const pluginPrefix = "monasca_"

// ownNames are our plugins without the prefix, by kind: they replace
// components of Redpanda Connect under the same names.
var ownNames = map[string][]string{
	"input":   {"kafka"},
	"output":  {"kafka"},
	"metrics": {"prometheus"},
}

// page lays out one plugin's reference the way Connect's documentation
// does: summary, configuration examples, description, examples, fields.
var page = template.Must(template.New("plugin").Parse(`# {{.Name}} ({{.Type}})

{{.Status}}{{if .Version}}, since {{.Version}}{{end}}. {{.Summary}}

## Common configuration

` + "```yaml" + `
{{.CommonConfigYAML}}` + "```" + `

## All fields

` + "```yaml" + `
{{.AdvancedConfigYAML}}` + "```" + `
{{.Description}}
{{range .Examples}}
## Example: {{.Title}}

{{.Summary}}

` + "```yaml" + `{{.Config}}` + "```" + `
{{end}}
## Fields
{{range .Fields}}
### ` + "`{{.FullName}}`" + `

{{.Description}}

Type: ` + "`{{.Type}}`" + `{{if .DefaultMarshalled}}; default: ` + "`{{.DefaultMarshalled}}`" + `{{end}}{{if .Options}}; options: {{range $i, $o := .Options}}{{if $i}}, {{end}}` + "`{{$o}}`" + `{{end}}{{end}}
{{range .AnnotatedOptions}}
- ` + "`{{index . 0}}`" + `: {{index . 1}}{{end}}
{{end}}`))

// resourceSummary and resourceDescription introduce the kafka_state_stores
// page. Benthos keeps only the fields of a custom resource type, not its
// summary and description, so they are written here; keep them in step
// with the store's spec (plugins/kafka/store.go).
const (
	resourceSummary     = "A store of checkpoints on a compacted Kafka topic, with fencing of former owners. A top-level list of resources; the `monasca_aggregate` buffer names one in `state_store`."
	resourceDescription = `
A store reads its topic once at start-up and then follows it, keeping the newest value of every key in memory.
Values of any size are cut into 512 KiB records. A component claims a key before it saves under it: the claim
returns the newest value saved by anyone, and from then on saves under the key by stores that claimed it before
fail (fenced). The topic is created at start-up when it is missing, compacted (` + "`cleanup.policy=compact`" + `,
` + "`segment.ms=3600000`" + `, ` + "`min.cleanable.dirty.ratio=0.1`" + `); while it cannot be created or read, the store says why in
the log and keeps trying, and an input whose buffer saves to the store does not consume meanwhile.
`
)

// resourceExample holds the required fields of the kafka_state_stores
// example entry.
var resourceExample = map[string]any{
	"label":        "window_state",
	"seed_brokers": []any{"localhost:9092"},
	"topic":        "monasca-aggregation-window-state",
}

func main() {
	out := flag.String("out", filepath.Join("docs", "plugins"), "directory to write the Markdown files to")
	flag.Parse()
	docs, err := render()
	if err == nil {
		err = write(*out, docs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "docs:", err)
		os.Exit(1)
	}
}

// ours reports whether the plugin name of kind is one of ours.
func ours(kind, name string) bool {
	return strings.HasPrefix(name, pluginPrefix) || slices.Contains(ownNames[kind], name)
}

// render returns the documentation of every plugin, by file name
// (<kind>_<name>.md).
func render() (map[string][]byte, error) {
	docs := map[string][]byte{}
	var errs []error
	emit := func(kind, name string, data any) {
		var b bytes.Buffer
		if err := page.Execute(&b, data); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", kind, name, err))
			return
		}
		// Benthos' descriptions use AsciiDoc section titles.
		docs[kind+"_"+name+".md"] = asciidocTitle.ReplaceAll(b.Bytes(), []byte("### "))
	}
	add := func(kind string) func(string, *service.ConfigView) {
		return func(name string, view *service.ConfigView) {
			if !ours(kind, name) {
				return
			}
			data, err := view.TemplateData()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", kind, name, err))
				return
			}
			emit(kind, name, data)
		}
	}
	env := service.GlobalEnvironment()
	env.WalkBuffers(add("buffer"))
	env.WalkProcessors(add("processor"))
	env.WalkInputs(add("input"))
	env.WalkOutputs(add("output"))
	env.WalkMetrics(add("metrics"))

	data, err := resourceData(env, kafka.StoreResourceType)
	if err != nil {
		errs = append(errs, fmt.Errorf("resource %s: %w", kafka.StoreResourceType, err))
	} else {
		emit("resource", kafka.StoreResourceType, data)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%v", errs)
	}
	return docs, nil
}

// resourceData returns the page data of a custom resource type: its fields
// from the full config schema, where benthos lists custom resources as
// top-level lists, and configuration examples of one list entry.
func resourceData(env *service.Environment, name string) (service.TemplateDataPlugin, error) {
	schema, err := env.FullConfigSchema("", "").TemplateData(name)
	if err != nil {
		return service.TemplateDataPlugin{}, err
	}
	// The list's default is empty, which shows no field: show one entry,
	// with every field at its default and the required ones as in the
	// shipped pipelines.
	entry := map[string]any{}
	for _, f := range schema.Fields {
		path := strings.Split(strings.TrimPrefix(f.FullName, "[]."), ".")
		if strings.Contains(strings.TrimPrefix(f.FullName, "[]"), "[]") {
			continue // inside a list, such as tls.client_certs
		}
		var v any
		switch {
		case f.DefaultMarshalled != "":
			if err := json.Unmarshal([]byte(f.DefaultMarshalled), &v); err != nil {
				return service.TemplateDataPlugin{}, fmt.Errorf("%s: default %s: %w", f.FullName, f.DefaultMarshalled, err)
			}
		case f.Type == "array" && len(path) == 1:
			v = []any{} // an optional list, such as sasl
		default:
			continue
		}
		m := entry
		for _, p := range path[:len(path)-1] {
			child, ok := m[p].(map[string]any)
			if !ok {
				child = map[string]any{}
				m[p] = child
			}
			m = child
		}
		m[path[len(path)-1]] = v
	}
	example := func(entry map[string]any) (string, error) {
		s := env.FullConfigSchema("", "")
		s.SetFieldDefault([]any{entry}, name)
		data, err := s.TemplateData(name)
		return data.AdvancedConfigYAML, err
	}
	common, err := example(resourceExample)
	if err != nil {
		return service.TemplateDataPlugin{}, err
	}
	for k, v := range resourceExample {
		entry[k] = v
	}
	advanced, err := example(entry)
	if err != nil {
		return service.TemplateDataPlugin{}, err
	}
	fields := slices.Clone(schema.Fields)
	for i := range fields {
		fields[i].FullName = name + fields[i].FullName
	}
	return service.TemplateDataPlugin{
		Name:               name,
		Type:               "resource",
		Status:             "stable",
		Summary:            resourceSummary,
		Description:        resourceDescription,
		Fields:             fields,
		CommonConfigYAML:   common,
		AdvancedConfigYAML: advanced,
	}, nil
}

func write(dir string, docs map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range docs {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
