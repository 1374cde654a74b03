package harness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestScrapeSumsByLabel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`# HELP invalid_total Invalid metrics.
# TYPE invalid_total counter
invalid_total{reason="wrong_type",path="a\"b"} 3
invalid_total{reason="missing_field"} 2
invalid_total{reason="wrong_type"} 1
open_series 7 1700000000000
`))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	samples, err := Scrape(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sum(samples, "invalid_total", "reason"); got["wrong_type"] != 4 || got["missing_field"] != 2 || len(got) != 2 {
		t.Errorf("invalid_total by reason: %v", got)
	}
	if got, err := ScrapeSum(context.Background(), addr, "open_series"); err != nil || got != 7 {
		t.Errorf("open_series: %v, %v; want 7", got, err)
	}
	if got := ReadyStatus(context.Background(), addr); got != http.StatusNotFound {
		t.Errorf("/ready: %d, want 404", got)
	}
}

func TestMemoryAndCPUOfThisProcess(t *testing.T) {
	rss, peak, err := Memory(os.Getpid())
	if err != nil || rss <= 0 || peak < rss {
		t.Errorf("Memory: rss %d, peak %d, %v", rss, peak, err)
	}
	if cpu, err := CPUSeconds(os.Getpid()); err != nil || cpu < 0 {
		t.Errorf("CPUSeconds: %v, %v", cpu, err)
	}
}
