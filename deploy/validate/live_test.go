package main

// TestLiveExposition checks the dashboard and alerts against what a running pipeline really
// serves. It reads expositions scraped from /metrics (KAFKA_PIPELINE_EXPOSITIONS: files,
// comma-separated, scraped KAFKA_PIPELINE_SCRAPE_INTERVAL apart, default 5s), and
//   - compares every family with deploy/metrics.txt: present, same type, same label names;
//     no undeclared kafka_pipeline_* family;
//   - loads the samples into a Prometheus TSDB and evaluates every dashboard query and every
//     alert expression with Prometheus' engine at the last scrape: none may fail, and the
//     dashboard's queries must return data.
// Skipped without KAFKA_PIPELINE_EXPOSITIONS (scripts/validate-deploy.sh --live sets it).

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/util/teststorage"
)

func TestLiveExposition(t *testing.T) {
	files := os.Getenv("KAFKA_PIPELINE_EXPOSITIONS")
	if files == "" {
		t.Skip("KAFKA_PIPELINE_EXPOSITIONS not set (scripts/validate-deploy.sh --live)")
	}
	interval := 5 * time.Second
	if s := os.Getenv("KAFKA_PIPELINE_SCRAPE_INTERVAL"); s != "" {
		var err error
		if interval, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	c, err := loadContract("../metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	st := teststorage.New(t)
	ctx := context.Background()
	var last map[string]*dto.MetricFamily
	paths := strings.Split(files, ",")
	for i, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: not Prometheus text format: %v", path, err)
		}
		last = fams
		ts := int64(i) * interval.Milliseconds()
		app := st.Appender(ctx)
		for name, fam := range fams {
			for _, s := range samples(name, fam) {
				lb := labels.NewBuilder(labels.FromMap(s.labels))
				lb.Set("job", "kafka-pipeline")
				lb.Set("instance", "live:9898")
				if _, err := app.Append(0, lb.Labels(), ts, s.value); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, up := range []float64{1} {
			_, _ = app.Append(0, labels.FromStrings("__name__", "up", "job", "kafka-pipeline", "instance", "live:9898"), ts, up)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}

	// The contract against the last scrape.
	for name, m := range c.metrics {
		if name == "up" {
			continue
		}
		fam, ok := last[name]
		if !ok {
			t.Errorf("%s (deploy/metrics.txt) is not exposed", name)
			continue
		}
		if got := strings.ToLower(fam.GetType().String()); got != m.typ {
			t.Errorf("%s: type %s, deploy/metrics.txt says %s", name, got, m.typ)
		}
		want := slices.Clone(m.labels)
		slices.Sort(want)
		for _, metric := range fam.GetMetric() {
			var got []string
			for _, l := range metric.GetLabel() {
				got = append(got, l.GetName())
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: labels %v, deploy/metrics.txt says %v", name, got, want)
				break
			}
		}
	}
	for name := range last {
		if _, ok := c.metrics[name]; !ok && strings.HasPrefix(name, "kafka_pipeline_") {
			t.Errorf("%s is exposed but not in deploy/metrics.txt", name)
		}
	}

	// Every query, evaluated at the last scrape.
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 10_000_000)
	at := time.UnixMilli(int64(len(paths)-1) * interval.Milliseconds())
	window := (time.Duration(len(paths)-1) * interval).Round(time.Second)
	if window < 2*interval {
		t.Fatal("need at least 3 scrapes for rate()")
	}
	eval := func(what, expr string) int {
		q, err := engine.NewInstantQuery(ctx, st, nil, expr, at)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return 0
		}
		res := q.Exec(ctx)
		if res.Err != nil {
			t.Errorf("%s: %v", what, res.Err)
			return 0
		}
		v, err := res.Vector()
		if err != nil {
			if _, err := res.Scalar(); err == nil {
				return 1
			}
			t.Errorf("%s: %v", what, err)
		}
		return len(v)
	}
	b, err := os.ReadFile("../grafana/dashboards/kafka-pipeline.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`\$__rate_interval|\$__interval|\$__range`)
	empty := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			expr := vars.ReplaceAllString(tg.Expr, window.String())
			expr = strings.NewReplacer(`"$job"`, `".*"`, `"$instance"`, `".*"`).Replace(expr)
			n := eval("panel "+p.Title, expr)
			t.Logf("panel %-32q %d series  %s", p.Title, n, tg.Expr)
			if n == 0 {
				empty++
				// Failures and rebalance counters may legitimately be 0 series only if the
				// exporter omits zero-valued labelled series; everything else must show data.
				if !strings.Contains(tg.Expr, "failures") {
					t.Errorf("panel %q returns no data: %s", p.Title, tg.Expr)
				}
			}
		}
	}
	groups, errs := rulefmt.ParseFile("../prometheus/alerts.yml", false, model.UTF8Validation, newPromQLParser(), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n := eval("alert "+r.Alert, r.Expr)
			t.Logf("alert %-32s active now: %d", r.Alert, n)
		}
	}
}

type sample struct {
	labels map[string]string
	value  float64
}

// samples flattens a family into series as Prometheus stores them (histograms as _bucket with
// le, _sum and _count).
func samples(name string, fam *dto.MetricFamily) []sample {
	var out []sample
	for _, m := range fam.GetMetric() {
		base := map[string]string{}
		for _, l := range m.GetLabel() {
			base[l.GetName()] = l.GetValue()
		}
		with := func(n string, extra ...string) map[string]string {
			ls := map[string]string{"__name__": n}
			for k, v := range base {
				ls[k] = v
			}
			for i := 0; i+1 < len(extra); i += 2 {
				ls[extra[i]] = extra[i+1]
			}
			return ls
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			out = append(out, sample{with(name), m.GetCounter().GetValue()})
		case dto.MetricType_GAUGE:
			out = append(out, sample{with(name), m.GetGauge().GetValue()})
		case dto.MetricType_HISTOGRAM:
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				out = append(out, sample{with(name+"_bucket", "le", model.SampleValue(b.GetUpperBound()).String()), float64(b.GetCumulativeCount())})
			}
			if bs := h.GetBucket(); len(bs) == 0 || !math.IsInf(bs[len(bs)-1].GetUpperBound(), 1) {
				out = append(out, sample{with(name+"_bucket", "le", "+Inf"), float64(h.GetSampleCount())})
			}
			out = append(out, sample{with(name + "_sum"), h.GetSampleSum()})
			out = append(out, sample{with(name + "_count"), float64(h.GetSampleCount())})
		default:
			out = append(out, sample{with(name), m.GetUntyped().GetValue()})
		}
	}
	return out
}
