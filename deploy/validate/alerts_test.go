package main

// Behaviour tests of deploy/prometheus/alerts.yml: synthetic series (Prometheus' own test
// loader and PromQL engine) for a healthy pipeline and for each failure, and the alerts that
// must fire — and must not — after an hour. Like `promtool test rules`, with `for:` applied to
// evaluations every minute.

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/util/teststorage"
)

// healthy is 1,000 events/s with 5 % dead letters, lag steady at 2 s of traffic (commits every
// epoch of 1 s trail the input by one to two epochs), the commit timestamp equal to the
// evaluation time, ready, scraped.
var healthy = map[string]string{
	"received":  `kafka_pipeline_events_received_total{job="kafka-pipeline",instance="a"} 0+60000x70`,
	"dlq":       `kafka_pipeline_events_dead_lettered_total{job="kafka-pipeline",instance="a",code="missing_field"} 0+3000x70`,
	"lag":       `kafka_pipeline_consumer_lag_sum{job="kafka-pipeline",instance="a"} 2000+0x70`,
	"commit":    `kafka_pipeline_last_commit_timestamp_seconds{job="kafka-pipeline",instance="a"} 0+60x70`,
	"ready":     `kafka_pipeline_ready{job="kafka-pipeline",instance="a"} 1+0x70`,
	"up":        `up{job="kafka-pipeline",instance="a"} 1+0x70`,
	"failures":  `kafka_pipeline_delivery_failures_total{job="kafka-pipeline",instance="a",topic="processed_data"} 0+0x70`,
	"commitf":   `kafka_pipeline_commit_failures_total{job="kafka-pipeline",instance="a"} 0+0x70`,
	"rebalance": `kafka_pipeline_rebalances_total{job="kafka-pipeline",instance="a",kind="assign"} 1+0x70`,
}

func TestAlertBehaviour(t *testing.T) {
	groups, errs := rulefmt.ParseFile("../prometheus/alerts.yml", false, model.UTF8Validation, newPromQLParser(), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cases := []struct {
		name    string
		replace map[string]string // series replacing healthy ones
		firing  []string          // alerts firing at 70m (alertname or alertname/label value)
	}{
		{"healthy pipeline: nothing fires (lag is never 0, by design)", nil, nil},
		{"healthy at 200,000 events/s: 400,000 records of lag are 2 s", map[string]string{
			"received": `kafka_pipeline_events_received_total{job="kafka-pipeline",instance="a"} 0+12000000x70`,
			"dlq":      `kafka_pipeline_events_dead_lettered_total{job="kafka-pipeline",instance="a",code="missing_field"} 0+600000x70`,
			"lag":      `kafka_pipeline_consumer_lag_sum{job="kafka-pipeline",instance="a"} 400000+0x10 400000+100x60`},
			nil},
		{"lag grows by 10,000 records a minute", map[string]string{
			"lag": `kafka_pipeline_consumer_lag_sum{job="kafka-pipeline",instance="a"} 2000+10000x70`},
			[]string{"KafkaPipelineLagGrowing", "KafkaPipelineLagHigh"}},
		{"lag grows by 300 records a minute but stays under 30 s of traffic", map[string]string{
			"lag": `kafka_pipeline_consumer_lag_sum{job="kafka-pipeline",instance="a"} 2000+300x70`},
			nil},
		{"a 100 events/s input falls behind by 1,000 records a minute (70,000 records: 700 s)", map[string]string{
			"received": `kafka_pipeline_events_received_total{job="kafka-pipeline",instance="a"} 0+6000x70`,
			"dlq":      `kafka_pipeline_events_dead_lettered_total{job="kafka-pipeline",instance="a",code="missing_field"} 0+300x70`,
			"lag":      `kafka_pipeline_consumer_lag_sum{job="kafka-pipeline",instance="a"} 200+1000x70`},
			[]string{"KafkaPipelineLagGrowing", "KafkaPipelineLagHigh"}},
		{"lag jumps once and drains: not growing, not high for long", map[string]string{
			"lag": `kafka_pipeline_consumer_lag_sum{job="kafka-pipeline",instance="a"} 2000+0x10 500000-10000x48 2000+0x10`},
			nil},
		{"lag jumps once to 500 s of traffic and stays: high, not growing", map[string]string{
			"lag": `kafka_pipeline_consumer_lag_sum{job="kafka-pipeline",instance="a"} 2000+0x10 500000+0x60`},
			[]string{"KafkaPipelineLagHigh"}},
		// Lag over a receive rate of 0 is +Inf: the lag rules must leave this to NoProgress.
		{"stuck after 20 minutes: nothing received, no commits, lag waiting", map[string]string{
			"received": `kafka_pipeline_events_received_total{job="kafka-pipeline",instance="a"} 0+60000x20 1200000+0x50`,
			"dlq":      `kafka_pipeline_events_dead_lettered_total{job="kafka-pipeline",instance="a",code="missing_field"} 0+3000x20 60000+0x50`,
			"commit":   `kafka_pipeline_last_commit_timestamp_seconds{job="kafka-pipeline",instance="a"} 0+60x20 1200+0x50`,
			"lag":      `kafka_pipeline_consumer_lag_sum{job="kafka-pipeline",instance="a"} 2000+0x20 2000+1000x50`},
			[]string{"KafkaPipelineNoProgress", "KafkaPipelineCommitStale"}},
		{"idle input: nothing received, nothing to commit, lag 0", map[string]string{
			"received": `kafka_pipeline_events_received_total{job="kafka-pipeline",instance="a"} 0+60000x20 1200000+0x50`,
			"dlq":      `kafka_pipeline_events_dead_lettered_total{job="kafka-pipeline",instance="a",code="missing_field"} 0+3000x20 60000+0x50`,
			"commit":   `kafka_pipeline_last_commit_timestamp_seconds{job="kafka-pipeline",instance="a"} 0+60x20 1200+0x50`,
			"lag":      `kafka_pipeline_consumer_lag_sum{job="kafka-pipeline",instance="a"} 2000+0x20 0+0x50`},
			nil},
		{"15 % dead letters", map[string]string{
			"dlq": `kafka_pipeline_events_dead_lettered_total{job="kafka-pipeline",instance="a",code="invalid_json"} 0+9000x70`},
			[]string{"KafkaPipelineDeadLetterRateHigh"}},
		{"deliveries to the DLQ fail", map[string]string{
			"failures": `kafka_pipeline_delivery_failures_total{job="kafka-pipeline",instance="a",topic="user-login-dlq"} 0+30x70`},
			[]string{"KafkaPipelineDeliveryFailures/user-login-dlq"}},
		{"a single delivery failure an hour ago: no alert now", map[string]string{
			"failures": `kafka_pipeline_delivery_failures_total{job="kafka-pipeline",instance="a",topic="processed_data"} 0 1+0x69`},
			nil},
		{"commits fail", map[string]string{
			"commitf": `kafka_pipeline_commit_failures_total{job="kafka-pipeline",instance="a"} 0+2x70`},
			[]string{"KafkaPipelineCommitFailures"}},
		{"not ready for the last 10 minutes", map[string]string{
			"ready": `kafka_pipeline_ready{job="kafka-pipeline",instance="a"} 1+0x60 0+0x10`},
			[]string{"KafkaPipelineNotReady"}},
		{"not ready for 3 minutes only", map[string]string{
			"ready": `kafka_pipeline_ready{job="kafka-pipeline",instance="a"} 1+0x67 0+0x3`},
			nil},
		{"an assignment every minute", map[string]string{
			"rebalance": `kafka_pipeline_rebalances_total{job="kafka-pipeline",instance="a",kind="assign"} 1+1x70`},
			[]string{"KafkaPipelineRebalanceStorm"}},
		{"scrape target down", map[string]string{
			"up": `up{job="kafka-pipeline",instance="a"} 1+0x55 0+0x15`},
			[]string{"KafkaPipelineTargetDown"}},
	}
	end := 70 * time.Minute
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var load strings.Builder
			load.WriteString("load 1m\n")
			for k, v := range healthy {
				if r, ok := c.replace[k]; ok {
					v = r
				}
				load.WriteString("  " + v + "\n")
			}
			storage := promqltest.LoadedStorage(t, load.String())
			engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 10_000_000)
			var firing []string
			for _, g := range groups.Groups {
				for _, rule := range g.Rules {
					for _, lbl := range firingAt(t, engine, storage, rule.Expr, time.Duration(rule.For), end) {
						name := rule.Alert
						if lbl != "" {
							name += "/" + lbl
						}
						firing = append(firing, name)
					}
				}
			}
			slices.Sort(firing)
			want := slices.Clone(c.firing)
			slices.Sort(want)
			if !slices.Equal(firing, want) {
				t.Fatalf("firing at %s: %v, want %v", end, firing, want)
			}
		})
	}
}

// firingAt evaluates expr every minute up to end and returns the series that were active at
// every evaluation of the last `hold` (so the alert is firing at end), identified by their
// topic label ("" when none).
func firingAt(t *testing.T, engine *promql.Engine, storage *teststorage.TestStorage, expr string, hold, end time.Duration) []string {
	t.Helper()
	start := time.Unix(0, 0).Add(end - hold)
	q, err := engine.NewRangeQuery(context.Background(), storage, nil, expr, start, time.Unix(0, 0).Add(end), time.Minute)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	m, err := res.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	steps := int(hold/time.Minute) + 1
	var out []string
	for _, s := range m {
		if len(s.Floats) == steps {
			out = append(out, s.Metric.Get("topic"))
		}
	}
	return out
}
