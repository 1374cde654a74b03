package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Sample is one sample of the Prometheus text exposition format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

var promLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// get requests http://addr+path, for at most 2 seconds.
func get(ctx context.Context, addr, path string) (status int, body []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Scrape reads http://addr/metrics.
func Scrape(ctx context.Context, addr string) ([]Sample, error) {
	status, body, err := get(ctx, addr, "/metrics")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d %s", status, http.StatusText(status))
	}
	var out []Sample
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s := Sample{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("bad metrics line %q", line)
			}
			s.Name = line[:i]
			for _, m := range promLabel.FindAllStringSubmatch(line[i+1:j], -1) {
				s.Labels[m[1]] = m[2]
			}
			rest = line[j+1:]
		} else if i >= 0 {
			s.Name, rest = line[:i], line[i:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("bad metrics line %q", line)
		}
		if s.Value, err = strconv.ParseFloat(fields[0], 64); err != nil {
			return nil, fmt.Errorf("bad metrics line %q: %w", line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// Sum adds up the samples of a metric, grouped by the value of one label
// ("" groups everything under "").
func Sum(samples []Sample, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples {
		if s.Name == name {
			out[s.Labels[label]] += s.Value
		}
	}
	return out
}

// ScrapeSum scrapes http://addr/metrics and adds up the samples of one
// metric.
func ScrapeSum(ctx context.Context, addr, name string) (float64, error) {
	samples, err := Scrape(ctx, addr)
	if err != nil {
		return 0, err
	}
	return Sum(samples, name, "")[""], nil
}

// ReadyStatus returns the status of http://addr/ready, 0 when it does not
// answer.
func ReadyStatus(ctx context.Context, addr string) int {
	status, _, err := get(ctx, addr, "/ready")
	if err != nil {
		return 0
	}
	return status
}
