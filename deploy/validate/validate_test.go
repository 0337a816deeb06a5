package main

// Each test copies the repository's deployment files into a temporary directory, breaks one
// thing, and asserts that the validator reports exactly that failure — so a check that can no
// longer fail is noticed. Needs KEDA_MODULE_DIR and PROMETHEUS_OPERATOR_MODULE_DIR (set by
// scripts/validate-deploy.sh).

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var repoFiles = []string{"deploy", "docker-compose.yml", "Dockerfile", ".dockerignore", "src", ".github", "migrations"}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, strings.TrimPrefix(path, src))
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// validate copies the repository, applies edit (file -> old -> new; old "" writes a new file,
// and a new file under src/ replaces all of src/), and runs every check.
func validate(t *testing.T, file, old, new string) (*report, string) {
	t.Helper()
	keda, promOp := os.Getenv("KEDA_MODULE_DIR"), os.Getenv("PROMETHEUS_OPERATOR_MODULE_DIR")
	if keda == "" || promOp == "" {
		t.Fatal("KEDA_MODULE_DIR and PROMETHEUS_OPERATOR_MODULE_DIR must be set (scripts/validate-deploy.sh does)")
	}
	dir := t.TempDir()
	for _, f := range repoFiles {
		copyTree(t, filepath.Join("../..", f), filepath.Join(dir, f))
	}
	if strings.HasPrefix(file, "src/") && old == "" {
		// A new source file replaces src/ entirely: the test states what the source has.
		if err := os.RemoveAll(filepath.Join(dir, "src")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if file != "" {
		path := filepath.Join(dir, file)
		b, err := os.ReadFile(path)
		if err != nil && old != "" {
			t.Fatal(err)
		}
		if old == "" { // a new file
			b = nil
		}
		if old != "" && !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s does not contain %q: update the test", file, old)
		}
		edited := []byte(new)
		if old != "" {
			edited = bytes.Replace(b, []byte(old), []byte(new), 1)
		}
		if err := os.WriteFile(path, edited, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	r := run(dir, keda, promOp, &out)
	return r, out.String()
}

func TestRepositoryPasses(t *testing.T) {
	r, out := validate(t, "", "", "")
	if r.errors != 0 || r.checks < 400 {
		t.Fatalf("%d failed, %d passed:\n%s", r.errors, r.checks, out)
	}
}

func TestBrokenFilesFail(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"unknown StatefulSet field", "deploy/k8s/statefulset.yaml", "periodSeconds: 10\n            timeoutSeconds: 3",
			"periodSecond: 10\n            timeoutSeconds: 3", `unknown field "periodSecond"`},
		{"wrong type in StatefulSet", "deploy/k8s/statefulset.yaml", "terminationGracePeriodSeconds: 45",
			"terminationGracePeriodSeconds: soon", "terminationGracePeriodSeconds"},
		{"grace period shorter than preStop + shutdown timeout", "deploy/k8s/statefulset.yaml",
			"terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds 30s >="},
		{"readiness probe on the wrong path", "deploy/k8s/statefulset.yaml", "path: /ready", "path: /readyz", "readiness probe"},
		{"misspelt environment twin", "deploy/k8s/configmap.yaml", "KAFKA_PIPELINE_GROUP_ID:", "KAFKA_PIPELINE_GROUPID:", "KAFKA_PIPELINE_GROUPID is not read"},
		{"secret key that does not exist", "deploy/k8s/statefulset.yaml", "key: password", "key: passwd", "has key passwd"},
		{"ScaledObject field of the wrong type", "deploy/k8s/keda-scaledobject.yaml", "maxReplicaCount: 6", "maxReplicaCount: six", "maxReplicaCount"},
		{"unknown ScaledObject field", "deploy/k8s/keda-scaledobject.yaml", "cooldownPeriod: 300", "cooldownPeriod: 300\n  cooldown: 300", "unknown field spec.cooldown"},
		{"Kafka scaler parameter typo", "deploy/k8s/keda-scaledobject.yaml", `lagThreshold: "100000"`, `lagTreshold: "100000"`, "parameter lagTreshold"},
		{"lagThreshold sized for lag that waited for the insight window (20 s of traffic)", "deploy/k8s/keda-scaledobject.yaml",
			`lagThreshold: "100000"`, `lagThreshold: "400000"`, "lagThreshold 400000 = 2 commit intervals"},
		{"lagThreshold so low that the structural lag alone scales out", "deploy/k8s/keda-scaledobject.yaml",
			`lagThreshold: "100000"`, `lagThreshold: "5000"`, "lagThreshold 5000 = 2 commit intervals"},
		{"lagThreshold that ignores a longer commit interval", "deploy/k8s/configmap.yaml",
			`KAFKA_PIPELINE_WORKERS: "2"`, `KAFKA_PIPELINE_WORKERS: "2"` + "\n  KAFKA_PIPELINE_COMMIT_INTERVAL: \"30s\"", "lagThreshold 100000 = 2 commit intervals (30s)"},
		{"ScaledObject without kind (KEDA assumes a Deployment)", "deploy/k8s/keda-scaledobject.yaml",
			"    kind: StatefulSet\n", "", "ScaledObject targets StatefulSet"},
		{"the workload as a Deployment", "deploy/k8s/statefulset.yaml", "kind: StatefulSet\n", "kind: Deployment\n",
			"run the pipeline as a StatefulSet"},
		{"pods created one by one", "deploy/k8s/statefulset.yaml", "podManagementPolicy: Parallel", "podManagementPolicy: OrderedReady",
			"podManagementPolicy Parallel"},
		{"pods updated only when deleted by hand", "deploy/k8s/statefulset.yaml", "type: RollingUpdate\n    rollingUpdate:\n      partition: 0",
			"type: OnDelete", "updateStrategy RollingUpdate"},
		{"a rollout that stops at ordinal 2", "deploy/k8s/statefulset.yaml", "rollingUpdate:\n      partition: 0",
			"rollingUpdate:\n      partition: 2", "updateStrategy RollingUpdate"},
		{"serviceName without its headless Service", "deploy/k8s/statefulset.yaml", "  podManagementPolicy: Parallel",
			"  serviceName: kafka-pipeline\n  podManagementPolicy: Parallel", "serviceName kafka-pipeline is a headless Service"},
		{"one instance id for every pod", "deploy/k8s/configmap.yaml", `KAFKA_PIPELINE_WORKERS: "2"`,
			`KAFKA_PIPELINE_WORKERS: "2"` + "\n  KAFKA_PIPELINE_INSTANCE_ID: \"pipeline\"", "ConfigMap sets no KAFKA_PIPELINE_INSTANCE_ID"},
		{"instance id from a field that changes with every pod", "deploy/k8s/statefulset.yaml", "fieldPath: metadata.name",
			"fieldPath: metadata.uid", "KAFKA_PIPELINE_INSTANCE_ID comes from the pod's metadata.name"},
		{"memory request under the measured peak RSS", "deploy/k8s/statefulset.yaml", "memory: 192Mi", "memory: 160Mi",
			"memory request 160Mi >= the measured peak RSS"},
		{"compose replicas sharing one instance id", "docker-compose.yml", `      KAFKA_PIPELINE_WORKERS: "2"`,
			`      KAFKA_PIPELINE_WORKERS: "2"` + "\n      KAFKA_PIPELINE_INSTANCE_ID: \"pipeline\"", "pipeline sets no KAFKA_PIPELINE_INSTANCE_ID"},
		{"scaler watching another group", "deploy/k8s/keda-scaledobject.yaml", `consumerGroup: "kafka-pipeline"`, `consumerGroup: "other"`, "consumerGroup ="},
		{"PodMonitor unknown field", "deploy/k8s/podmonitor.yaml", "interval: 15s", "intervall: 15s", "unknown field"},
		{"namespace in a manifest", "deploy/k8s/configmap.yaml", "name: kafka-pipeline\n", "name: kafka-pipeline\n  namespace: prod\n", "namespace-free"},
		{"alert on an unknown metric", "deploy/prometheus/alerts.yml", "kafka_pipeline_ready == 0", "kafka_pipeline_is_ready == 0", "kafka_pipeline_is_ready is not in deploy/metrics.txt"},
		{"alert that does not parse", "deploy/prometheus/alerts.yml", "kafka_pipeline_ready == 0", "kafka_pipeline_ready == ", "parse"},
		{"alert with an unknown field", "deploy/prometheus/alerts.yml", "for: 5m\n        labels:", "for: 5m\n        lables:", "lables"},
		{"alert grouping by a label nothing has", "deploy/prometheus/alerts.yml", "sum by (job, topic)", "sum by (job, topik)", `no selected metric has label "topik"`},
		{"rate over a gauge", "deploy/prometheus/alerts.yml", "deriv(sum by (job) (kafka_pipeline_consumer_lag_sum)[10m:1m])",
			"deriv(sum by (job) (rate(kafka_pipeline_consumer_lag_sum[5m]))[10m:1m])", "rate() over gauge"},
		{"dashboard query with a typo", "deploy/grafana/dashboards/kafka-pipeline.json", "sum by (code) (rate(kafka_pipeline_events_dead_lettered_total",
			"sum by (cde) (rate(kafka_pipeline_events_dead_lettered_total", `no selected metric has label "cde"`},
		{"dashboard label matcher the metric lacks", "deploy/grafana/dashboards/kafka-pipeline.json", `kafka_pipeline_ready{job=~\"$job\"`,
			`kafka_pipeline_ready{topic=\"x\", job=~\"$job\"`, `kafka_pipeline_ready has no label "topic"`},
		{"dashboard not JSON", "deploy/grafana/dashboards/kafka-pipeline.json", `"uid": "kafka-pipeline",`, `"uid": "kafka-pipeline"`, "not valid JSON"},
		{"dashboard field Grafana's schema does not have", "deploy/grafana/dashboards/kafka-pipeline.json", `"colorMode": "value"`, `"colourMode": "value"`, "colourMode"},
		{"compose key that does not exist", "docker-compose.yml", "stop_grace_period: 40s", "stop_grace: 40s", "stop_grace"},
		{"compose grace period under the shutdown timeout", "docker-compose.yml", "stop_grace_period: 40s", "stop_grace_period: 10s", "stop_grace_period exceeds"},
		{"Dockerfile lint: FROM/AS casing", "Dockerfile", "AS builder", "as builder", "FromAsCasing"},
		{"workflow not running .ci/run", ".github/workflows/ci.yml", "run: bash .ci/run", "run: cargo test", "runs bash .ci/run"},
		{"exporter in src/ lacks a listed family", "src/metrics.rs", "",
			`const A: &str = "kafka_pipeline_ready"; const B: &str = "events_received_total";`, "kafka_pipeline_workers (deploy/metrics.txt) is exported"},
		{"metrics address flag exists under another env name", "src/config.rs", "",
			`struct X { metrics_addr: String } // env = "KAFKA_PIPELINE_METRICS_LISTEN"`, "KAFKA_PIPELINE_METRICS_ADDR is not read"},
		{"kustomization with an unknown field", "deploy/k8s/kustomization.yaml", "labels:\n", "lables:\n", "kustomize build deploy/k8s"},
		{"Dockerfile running as root", "Dockerfile", "USER 10001:10001", "USER root", "non-root"},
		{"insights panel on a column the migrations lack", "deploy/grafana/dashboards/insights.json", `distinct_users AS \"users\"`,
			`distinct_user AS \"users\"`, `no column "distinct_user"`},
		{"insights panel on a table the migrations lack", "deploy/grafana/dashboards/insights.json", `FROM sink_skipped`,
			`FROM sink_skip`, "table sink_skip is not created by migrations/"},
		{"insights panel SQL that does not parse", "deploy/grafana/dashboards/insights.json", `GROUP BY 1\nORDER BY 2 DESC`,
			`GROUP BY BY 1\nORDER BY 2 DESC`, "does not parse"},
		{"insights panel qualified column of the wrong table", "deploy/grafana/dashboards/insights.json", `jsonb_each_text(w.by_locale)`,
			`jsonb_each_text(w.by_locales)`, `table insight_windows has no column "by_locales"`},
		{"alert on a datasource that is not provisioned", "deploy/grafana/provisioning/alerting/insights.yml", "datasourceUid: insights-postgres",
			"datasourceUid: insights-pg", "datasource insights-pg is not provisioned"},
		{"alert condition naming no query", "deploy/grafana/provisioning/alerting/insights.yml", "condition: C", "condition: D", "condition D is one of its queries"},
		{"alert rule with an unknown field", "deploy/grafana/provisioning/alerting/insights.yml", "noDataState: OK", "noData: OK", "unknown field"},
		{"alert SQL on a column the migrations lack", "deploy/grafana/provisioning/alerting/insights.yml", "sum(missing_device_type)",
			"sum(missing_device)", `no column "missing_device"`},
		{"sink environment twin that does not exist", "docker-compose.yml", "KAFKA_PIPELINE_POSTGRES_URL:", "KAFKA_PIPELINE_PG_URL:",
			"KAFKA_PIPELINE_PG_URL is not read"},
		{"binary's input topic default changed without the Terraform module", "src/cli/kafka.rs", `default_value = "user-login"`,
			`default_value = "logins"`, `input topic "user-login" is the binary's default KAFKA_PIPELINE_INPUT_TOPIC ("logins")`},
		{"Terraform file that does not parse", "deploy/terraform/modules/topics/main.tf", `resource "kafka_topic" "pipeline" {`,
			`resource "kafka_topic" "pipeline" {{`, "modules/topics/main.tf does not parse"},
		{"Terraform file not formatted as terraform fmt does", "deploy/terraform/modules/topics/main.tf", "  name               = each.value.name",
			"  name = each.value.name", "main.tf is not formatted as terraform fmt formats it"},
		{"topics' partitions no longer KEDA's maxReplicaCount", "deploy/k8s/keda-scaledobject.yaml", "maxReplicaCount: 6", "maxReplicaCount: 4",
			"partitions 6 = KEDA maxReplicaCount 4"},
		{"the binary's min.insync.replicas rule changed", "src/commands/topics.rs", "(replication_factor - 1).clamp(1, 2)",
			"(replication_factor - 1).clamp(1, 3)", "min.insync.replicas rule is still min(2, rf - 1)"},
		{"an MSK cluster of two brokers", "deploy/terraform/modules/msk/main.tf", "number_of_broker_nodes = 3", "number_of_broker_nodes = 2",
			"modules/msk: 3 brokers"},
		{"MSK without in-sync replication", "deploy/terraform/modules/msk/main.tf", `"min.insync.replicas"                      = "2"`,
			`"min.insync.replicas"                      = "1"`, "default.replication.factor=3, min.insync.replicas=2"},
		{"ACLs for another group than the binary's", "deploy/terraform/modules/topics/variables.tf",
			"description = \"Consumer group of the pipeline (--group-id).\"\n  type        = string\n  default     = \"kafka-pipeline\"",
			"description = \"Consumer group of the pipeline (--group-id).\"\n  type        = string\n  default     = \"pipeline\"",
			`group "pipeline" is the binary's default --group-id`},
		{"Terraform ConfigMap entry the binary does not read", "deploy/terraform/modules/workload/main.tf", "KAFKA_PIPELINE_GROUP_ID       = var.group_id",
			"KAFKA_PIPELINE_GROUPID        = var.group_id", "KAFKA_PIPELINE_GROUPID is read by kafka-pipeline"},
		{"Terraform image override that misses deploy/k8s's image", "deploy/terraform/modules/workload/main.tf", `name     = "kafka-pipeline"`,
			`name     = "pipeline"`, "the StatefulSet runs image_repository:image_tag"},
		{"dead-letter topic smaller than the input's records", "deploy/terraform/modules/topics/variables.tf", "max_message_bytes = 2097152",
			"max_message_bytes = 1000000", "dlq max.message.bytes 1000000 > the input's 1048588"},
		{"release workflow deploys production without the gated environment", ".github/workflows/release.yml", "environment:\n      name: production",
			"environment:\n      name: prod", "production job runs in the environment production"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, out := validate(t, c.file, c.old, c.new)
			if r.errors == 0 {
				t.Fatalf("no failure reported:\n%s", out)
			}
			found := false
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "FAIL") && strings.Contains(l, c.want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no FAIL line contains %q:\n%s", c.want, grepFail(out))
			}
		})
	}
}

func grepFail(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FAIL") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
