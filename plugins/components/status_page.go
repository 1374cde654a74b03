package components

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"reflect"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// endpointRegistrar is the method of benthos' internal manager that adds a
// path to the pipeline's HTTP server (beside /metrics, /ready and /ping).
type endpointRegistrar interface {
	RegisterEndpoint(path, desc string, h http.HandlerFunc)
}

// endpointRegistrarOf returns the internal manager behind mgr as an
// endpointRegistrar. Benthos v4.69's public API gives a plugin no way to
// serve HTTP: only Resources.XUnwrapper, "for internal use", reaches the
// manager, through an Unwrap method whose result has an internal type, so
// it is called by reflection. When a benthos upgrade changes that, ok is
// false and the buffer runs without its status page.
func endpointRegistrarOf(mgr *service.Resources) (endpointRegistrar, bool) {
	unwrap := reflect.ValueOf(mgr.XUnwrapper()).MethodByName("Unwrap")
	if !unwrap.IsValid() || unwrap.Type().NumIn() != 0 || unwrap.Type().NumOut() != 1 {
		return nil, false
	}
	reg, ok := unwrap.Call(nil)[0].Interface().(endpointRegistrar)
	return reg, ok
}

// registerStatusPage serves the buffer's status at /status (HTML) and
// /status.json on the pipeline's HTTP address.
func registerStatusPage(mgr *service.Resources, b *aggregateBuffer) {
	reg, ok := endpointRegistrarOf(mgr)
	if !ok {
		b.log.Warnf("This benthos version offers no way to add an HTTP endpoint: the aggregation's /status page is not served")
		return
	}
	reg.RegisterEndpoint("/status", "The monasca_aggregate buffer's specifications, partitions, open windows and checkpoints.", b.serveStatusPage)
	reg.RegisterEndpoint("/status.json", "The monasca_aggregate buffer's status page as JSON.", b.serveStatusJSON)
}

func (b *aggregateBuffer) serveStatusPage(w http.ResponseWriter, _ *http.Request) {
	report := b.status()
	var page bytes.Buffer
	if err := statusTemplate.Execute(&page, &report); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(page.Bytes())
}

func (b *aggregateBuffer) serveStatusJSON(w http.ResponseWriter, _ *http.Request) {
	report := b.status()
	body, err := json.MarshalIndent(&report, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(body, '\n'))
}

// statusTimeLayout shows milliseconds: windows and watermarks move in them.
const statusTimeLayout = "2006-01-02 15:04:05.000"

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"time": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			return t.Format(statusTimeLayout)
		case *time.Time:
			if t != nil {
				return t.Format(statusTimeLayout)
			}
		}
		return "–"
	},
	"ms": func(ms *int64) string {
		if ms == nil {
			return "–"
		}
		return (time.Duration(*ms) * time.Millisecond).String()
	},
	"offset": func(o *int64) string {
		if o == nil {
			return "–"
		}
		return fmt.Sprint(*o)
	},
	// until is the event time the lane's close time must still advance
	// for a window to close.
	"until": func(closeAt time.Time, through *time.Time) string {
		switch {
		case through == nil:
			return "–"
		case !closeAt.After(*through):
			return "due"
		}
		return closeAt.Sub(*through).String()
	},
}).Parse(statusPage))

const statusPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>monasca-connect status</title>
<style>
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
dt { font-weight: bold; float: left; clear: left; width: 14em; }
dd { margin-left: 14em; }
</style>
</head>
<body>
<h1>monasca-connect status</h1>
<p>Stage <strong>{{.Stage}}</strong>; windows of {{.WindowSize}}, closed {{.WindowLag}} after their end.
Taken at {{time .Time}} UTC. <a href="status.json">As JSON</a>.</p>
{{if .Stopping}}<p><strong>Stopping: no window closes any more.</strong></p>{{end}}

<h2>Specifications</h2>
<table id="specifications">
<thead><tr><th>Specification</th><th>Open series</th><th>Metrics folded</th><th>Corrected</th><th>Late</th><th>Invalid (series limit)</th></tr></thead>
<tbody>
{{- range .Specifications}}
<tr><td>{{.Name}}</td><td class="n">{{.OpenSeries}}</td><td class="n">{{.Folded}}</td><td class="n">{{.Corrected}}</td><td class="n">{{.Late}}</td><td class="n">{{.SeriesLimit}}</td></tr>
{{- end}}
</tbody>
</table>
{{range $lane := .Lanes}}
<h2>{{if .Input}}Input partition {{.Input}}{{else}}All input partitions{{end}}</h2>
<dl>
<dt>State key</dt><dd>{{.StateKey}}{{if not .Restored}} (reading the saved state){{end}}</dd>
<dt>Watermark</dt><dd>{{time .Watermark}}</dd>
<dt>Windows close through</dt><dd>{{time .CloseThrough}}</dd>
<dt>Frontier (closed through)</dt><dd>{{time .Frontier}}</dd>
<dt>Last checkpoint</dt><dd>{{with .Checkpoint}}{{time .Time}}, {{.Bytes}} bytes{{else}}none saved yet{{end}}</dd>
</dl>
<table class="partitions">
<caption>{{if eq $.Stage "merge"}}Stage-one partitions and their progress{{else}}Input partitions{{end}}</caption>
<thead><tr><th>Partition</th><th>Latest event time</th><th>Behind the newest</th><th>Offset</th><th>Last seen</th><th>State</th></tr></thead>
<tbody>
{{- range .Partitions}}
<tr><td>{{.Topic}}/{{.Partition}}</td><td>{{time .LatestEventTime}}</td><td class="n">{{ms .LagMS}}</td><td class="n">{{offset .Offset}}</td><td>{{time .LastSeen}}</td><td>{{if .Idle}}idle{{else if .Quiet}}quiet{{else}}active{{end}}</td></tr>
{{- else}}
<tr><td colspan="6">none yet</td></tr>
{{- end}}
</tbody>
</table>
<table class="windows">
<caption>Open windows</caption>
<thead><tr><th>Specification</th><th>Start</th><th>End</th><th>Closes at (end + lag)</th><th>Still to go</th><th>Series</th><th>State</th></tr></thead>
<tbody>
{{- range .Windows}}
<tr><td>{{.Spec}}</td><td>{{time .Start}}</td><td>{{time .End}}</td><td>{{time .CloseAt}}</td><td class="n">{{if .Closed}}closed{{else}}{{until .CloseAt $lane.CloseThrough}}{{end}}</td><td class="n">{{.Series}}</td><td>{{if .Closed}}closed, kept for corrections{{else}}open{{end}}</td></tr>
{{- else}}
<tr><td colspan="7">none</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p>No input yet.</p>
{{- end}}
</body>
</html>
`
