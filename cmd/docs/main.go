// Command docs writes the reference documentation of monasca-connect's own
// plugins, rendered from their configuration specs as Redpanda Connect
// renders its own, to docs/plugins/ (one Markdown file per plugin):
//
//	go run ./cmd/docs
//
// A test fails when the committed files differ from what the specs render.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/monasca-connect/monasca-connect/plugins/components"
)

var asciidocTitle = regexp.MustCompile(`(?m)^== `)

// pluginPrefix marks our plugins among the stock ones of the environment.
const pluginPrefix = "monasca_"

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

// render returns the documentation of every plugin, by file name
// (<kind>_<name>.md).
func render() (map[string][]byte, error) {
	docs := map[string][]byte{}
	var errs []error
	add := func(kind string) func(string, *service.ConfigView) {
		return func(name string, view *service.ConfigView) {
			if !strings.HasPrefix(name, pluginPrefix) {
				return
			}
			data, err := view.TemplateData()
			var b bytes.Buffer
			if err == nil {
				err = page.Execute(&b, data)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", kind, name, err))
				return
			}
			// Connect's descriptions use AsciiDoc section titles.
			docs[kind+"_"+name+".md"] = asciidocTitle.ReplaceAll(b.Bytes(), []byte("### "))
		}
	}
	env := service.GlobalEnvironment()
	env.WalkBuffers(add("buffer"))
	env.WalkProcessors(add("processor"))
	env.WalkInputs(add("input"))
	env.WalkOutputs(add("output"))
	if len(errs) > 0 {
		return nil, fmt.Errorf("%v", errs)
	}
	return docs, nil
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
