package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// statusSpecs are the names of the specifications in specsFile.
var statusSpecs = []string{"CpuTotal", "CpuSamplesPerHost", "MemoryPerService", "NetworkPeakPerService", "CpuTotalSamples"}

// statusJSON is the part of /status.json the test waits for.
type statusJSON struct {
	Lanes []struct {
		Checkpoint *struct {
			Bytes int `json:"bytes"`
		} `json:"checkpoint"`
		Partitions []struct {
			LatestEventTime *time.Time `json:"latest_event_time"`
		} `json:"partitions"`
		Windows []struct {
			Closed bool `json:"closed"`
		} `json:"windows"`
	} `json:"lanes"`
}

// complete reports whether the status shows what the page is checked
// for: a saved checkpoint, every input partition delivering, an open
// window.
func (s *statusJSON) complete(partitions int) bool {
	if len(s.Lanes) != 1 {
		return false
	}
	l := s.Lanes[0]
	if l.Checkpoint == nil || len(l.Partitions) != partitions || len(l.Windows) == 0 {
		return false
	}
	for _, p := range l.Partitions {
		if p.LatestEventTime == nil {
			return false
		}
	}
	return true
}

// TestStatusPageInBrowser runs the shipped aggregation pipeline on live
// input and reads its /status page in headless Chromium: the page, as a
// browser renders it, names every specification, has a row for each of
// the four input partitions, an open window and the last checkpoint's
// time. It also checks the per-specification counters on /metrics. With
// UPDATE_SCREENSHOT=1 it saves a screenshot of the page as docs/status.png.
func TestStatusPageInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is missing; CI installs Debian's chromium (.ci/run)")
		}
		t.Skip("chromium is not installed (Debian: apt-get install chromium): the status page is not checked in a browser")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rng := newRand(t)
	e := newEnv(t, ownConfig)
	p := e.startProc(procSpec{})
	g := groupWant{group: e.group, topic: ownConfig.inputTopic, members: 1, partitions: ownParts, oneOwner: true}
	if ok, desc := e.waitSettled(ctx, g, ownSettle, []*process{p}); !ok {
		t.Fatalf("the group did not settle within %v: %s", ownSettle, desc)
	}
	live := startTrickle(ctx, e, rand.New(rand.NewPCG(rng.Uint64(), 6)), trickleSpec{
		tick: ownTick, partitions: ownParts, lag: ownLag, perTick: 5, varyPerTick: true, hosts: 40,
	})
	defer live.stop()

	url := "http://" + p.httpAddr + "/status"
	var st statusJSON
	var last string
	if !harness.Poll(ctx, 30*time.Second, 250*time.Millisecond, func() bool {
		body, err := httpGetText(ctx, url+".json")
		last = fmt.Sprint(body, err)
		return err == nil && json.Unmarshal([]byte(body), &st) == nil && st.complete(ownParts)
	}) {
		t.Fatalf("/status.json did not show a checkpoint, %d delivering partitions and an open window within 30s; last: %s", ownParts, last)
	}

	dom := runChromium(ctx, t, chromium, "--dump-dom", url)
	var missing []string
	for _, spec := range statusSpecs {
		missing = appendMissing(missing, dom, "<td>"+spec+"</td>")
	}
	for part := range ownParts {
		missing = appendMissing(missing, dom, fmt.Sprintf("<td>%s/%d</td>", ownConfig.inputTopic, part))
	}
	missing = appendMissing(missing, dom, "<td>open</td>")
	if !regexp.MustCompile(`Last checkpoint</dt>\s*<dd>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}, \d+ bytes</dd>`).MatchString(dom) {
		missing = append(missing, "the last checkpoint's time")
	}
	if len(missing) > 0 {
		t.Errorf("the page as Chromium renders it lacks %s:\n%s", strings.Join(missing, ", "), dom)
	}

	samples, err := harness.Scrape(ctx, p.httpAddr)
	if err != nil {
		t.Fatalf("scraping /metrics: %v", err)
	}
	matched := harness.Sum(samples, "monasca_spec_matched_total", "spec")
	for _, spec := range statusSpecs {
		if _, ok := matched[spec]; !ok {
			t.Errorf("monasca_spec_matched_total has no series for spec %q: %v", spec, matched)
		}
	}
	if matched["CpuTotal"] == 0 {
		t.Errorf("monasca_spec_matched_total{spec=\"CpuTotal\"} is 0 on live input")
	}

	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		path := filepath.Join(repoRoot, "docs", "status.png")
		runChromium(ctx, t, chromium, "--screenshot="+path, "--window-size=1200,1600", url)
		t.Logf("wrote %s", path)
	}
}

// httpGetText returns the body of a GET of url.
func httpGetText(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	return string(body), nil
}

// runChromium runs headless Chromium with a fresh profile and the given
// arguments and returns its standard output. The flags keep it from
// reaching anything but the page: no sync, updates or background requests.
func runChromium(ctx context.Context, t *testing.T, chromium string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(),
	}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

func appendMissing(missing []string, dom, want string) []string {
	if !strings.Contains(dom, want) {
		missing = append(missing, want)
	}
	return missing
}
