package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// checkCompose loads docker-compose.yml with compose-go, the library behind `docker compose
// config`: the compose-spec JSON schema, interpolation, profiles and path resolution.
func checkCompose(r *report, root string) {
	r.start("docker compose")
	load := func(profiles []string) *types.Project {
		opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
			cli.WithWorkingDirectory(root), cli.WithName("kafka-pipeline"), cli.WithProfiles(profiles))
		if err != nil {
			r.errorf("%v", err)
			return nil
		}
		p, err := opts.LoadProject(context.Background())
		if err != nil {
			r.errorf("docker-compose.yml (profiles %v): %v", profiles, err)
			return nil
		}
		return p
	}
	base := load(nil)
	mon := load([]string{"monitoring"})
	if base == nil || mon == nil {
		return
	}
	r.ok("docker-compose.yml loads with the compose-spec schema, without and with profile monitoring")
	names := func(p *types.Project) []string {
		n := p.ServiceNames()
		slices.Sort(n)
		return n
	}
	r.check(slices.Equal(names(base), []string{"data-generator", "kafka", "pipeline", "topics"}),
		"default services: %v", names(base))
	r.check(slices.Equal(names(mon), []string{"data-generator", "grafana", "kafka", "pipeline", "prometheus", "topics"}),
		"profile monitoring adds prometheus and grafana: %v", names(mon))

	pl := mon.Services["pipeline"]
	r.check(pl.Build != nil && pl.Build.Dockerfile == "Dockerfile" && pl.Build.Context == root, "pipeline is built from ./Dockerfile")
	env := func(k string) string {
		if v := pl.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	r.check(env("KAFKA_PIPELINE_BROKERS") == "kafka:9092", "pipeline uses the internal listener kafka:9092")
	r.check(env("KAFKA_PIPELINE_METRICS_ADDR") == "0.0.0.0:9898", "pipeline metrics on 0.0.0.0:9898")
	shutdown, err := time.ParseDuration(env("KAFKA_PIPELINE_SHUTDOWN_TIMEOUT"))
	if err != nil {
		shutdown = 30 * time.Second
	}
	r.check(pl.StopGracePeriod != nil && time.Duration(*pl.StopGracePeriod) > shutdown,
		"pipeline stop_grace_period exceeds its shutdown timeout %s", shutdown)
	r.check(pl.DependsOn["kafka"].Condition == "service_healthy" && pl.DependsOn["topics"].Condition == "service_completed_successfully",
		"pipeline waits for a healthy broker and the created topics")
	// `--scale pipeline=3` runs the same environment three times: one explicit instance id
	// would be every replica's static member id and transactional.id (they would fence each
	// other). The default, HOSTNAME-PID, differs per container.
	_, fixedID := pl.Environment["KAFKA_PIPELINE_INSTANCE_ID"]
	r.check(!fixedID, "pipeline sets no KAFKA_PIPELINE_INSTANCE_ID (replicas of --scale would share it)")
	known := knownEnv(root)
	for k := range pl.Environment {
		if strings.HasPrefix(k, "KAFKA_PIPELINE_") && !known[k] && !isPending(root, k) {
			r.errorf("pipeline environment %s is not read by kafka-pipeline", k)
		}
	}
	for _, name := range []string{"prometheus", "grafana"} {
		s := mon.Services[name]
		r.check(slices.Equal(s.Profiles, []string{"monitoring"}), "%s only in profile monitoring", name)
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				_, err := os.Stat(v.Source)
				r.check(err == nil, "%s bind mount %s exists", name, rel(root, v.Source))
			}
		}
	}
	checkComposeInsights(r, root, load([]string{"monitoring", "insights"}), known)
	// The Prometheus image runs the same rule-file parser version the alerts are checked with
	// (Go module v0.3XX.Y is Prometheus v3.XX.Y).
	img := mon.Services["prometheus"].Image
	r.check(strings.HasPrefix(img, "prom/prometheus:v3."), "prometheus image is Prometheus 3 (%s)", img)
	gm, _ := os.ReadFile(filepath.Join(root, "deploy/validate/go.mod"))
	ver := strings.TrimPrefix(img, "prom/prometheus:v3.")
	r.check(strings.Contains(string(gm), "github.com/prometheus/prometheus v0.3"+ver+"\n"),
		"prometheus image %s matches the rule parser in deploy/validate/go.mod", img)
}

// checkComposeInsights checks profile insights: PostgreSQL (healthy before the sink starts) and
// the sink, with environment twins kafka-pipeline reads and a grace period over its shutdown
// timeout; Grafana gets the password its PostgreSQL datasource interpolates.
func checkComposeInsights(r *report, root string, p *types.Project, known map[string]bool) {
	if p == nil {
		return
	}
	for _, name := range []string{"postgres", "sink"} {
		s, ok := p.Services[name]
		r.check(ok && slices.Equal(s.Profiles, []string{"insights"}), "%s only in profile insights", name)
	}
	sink := p.Services["sink"]
	r.check(slices.Equal([]string(sink.Command), []string{"sink"}) && sink.Image == p.Services["pipeline"].Image,
		"sink runs `kafka-pipeline sink` from the pipeline's image")
	r.check(sink.DependsOn["postgres"].Condition == "service_healthy" && sink.DependsOn["kafka"].Condition == "service_healthy",
		"sink waits for a healthy PostgreSQL and broker")
	r.check(p.Services["postgres"].HealthCheck != nil && len(p.Services["postgres"].HealthCheck.Test) > 0,
		"postgres has a health check")
	env := func(s types.ServiceConfig, k string) string {
		if v := s.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	r.check(strings.HasPrefix(env(sink, "KAFKA_PIPELINE_POSTGRES_URL"), "postgres://") &&
		strings.Contains(env(sink, "KAFKA_PIPELINE_POSTGRES_URL"), "@postgres:5432/kafka_pipeline"),
		"sink writes to the postgres service's database kafka_pipeline")
	for k := range sink.Environment {
		if strings.HasPrefix(k, "KAFKA_PIPELINE_") && !known[k] {
			r.errorf("sink environment %s is not read by kafka-pipeline", k)
		}
	}
	shutdown, err := time.ParseDuration(env(sink, "KAFKA_PIPELINE_SHUTDOWN_TIMEOUT"))
	if err != nil {
		shutdown = 30 * time.Second
	}
	r.check(sink.StopGracePeriod != nil && time.Duration(*sink.StopGracePeriod) > shutdown,
		"sink stop_grace_period exceeds its shutdown timeout %s", shutdown)
	r.check(env(p.Services["grafana"], "KAFKA_PIPELINE_POSTGRES_PASSWORD") != "",
		"grafana has the password of its PostgreSQL datasource")
}
