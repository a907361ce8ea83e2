package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Metric names the bench reads from radgate's /metrics.
const (
	metricFHIRSentBytes = "radgate_fhir_sent_bytes_total"
	metricStageSeconds  = "radgate_stage_handle_seconds"
)

// samples are the values of a Prometheus text exposition, keyed by series
// as written: the name and its {labels}, if any.
type samples map[string]float64

// scrape reads radgate's /metrics.
func scrape(ctx context.Context, base string) (samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading radgate's /metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading radgate's /metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("radgate's /metrics: HTTP %d", resp.StatusCode)
	}
	return parseMetrics(string(body)), nil
}

// parseMetrics reads the text exposition format: comments and lines that
// do not parse are skipped.
func parseMetrics(text string) samples {
	out := samples{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the series (whose label values may hold
		// spaces) after the closing brace, or after the name.
		series, rest := line, ""
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			series, rest = line[:i+1], line[i+1:]
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			series, rest = line[:i], line[i:]
		}
		f := strings.Fields(rest) // value, then an optional timestamp
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[series] = v
	}
	return out
}

// sum adds up the series of the metric name that carry every one of the
// label matchers (`stage="inference"`).
func (s samples) sum(name string, labels ...string) float64 {
	total := 0.0
series:
	for k, v := range s {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(k, l) {
				continue series
			}
		}
		total += v
	}
	return total
}

// stageMeans is the mean time, in ms, each stage spent on one message
// (radgate_stage_handle_seconds sum ÷ count, over every facility); stages
// without messages are left out.
func (s samples) stageMeans() map[string]float64 {
	sums, counts := map[string]float64{}, map[string]float64{}
	for k, v := range s {
		var into map[string]float64
		switch {
		case strings.HasPrefix(k, metricStageSeconds+"_count{"):
			into = counts
		case strings.HasPrefix(k, metricStageSeconds+"_sum{"):
			into = sums
		default:
			continue
		}
		_, rest, ok := strings.Cut(k, `stage="`)
		if !ok {
			continue
		}
		stage, _, _ := strings.Cut(rest, `"`)
		into[stage] += v
	}
	out := map[string]float64{}
	for stage, n := range counts {
		if n > 0 {
			out[stage] = sums[stage] / n * 1000
		}
	}
	return out
}
