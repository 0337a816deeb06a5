// Command validate-deploy checks the deployment files of kafka-pipeline without a cluster, a
// Docker daemon or Prometheus: the Kubernetes manifests by strict decoding into the official
// API types (and custom resources against their CRDs' OpenAPI schemas, as the API server does),
// the alert rules with Prometheus' own rule-file and PromQL parsers, the Grafana dashboard's
// queries with the same parser (its SQL queries and Grafana's alert rule with PostgreSQL's own
// parser, libpg_query, against the tables and columns that migrations/ create), the compose file with the compose-spec loader that
// `docker compose config` uses, and the Dockerfile with BuildKit's parser and linter. Every
// metric name and label used by the dashboard and the alerts must be in deploy/metrics.txt.
//
// Usage: validate-deploy -repo DIR -keda DIR -prometheus-operator DIR
// (the two module directories come from `go mod download -json`; scripts/validate-deploy.sh
// passes them).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// report collects findings per check; any error fails the run.
type report struct {
	out     io.Writer
	section string
	errors  int
	checks  int
}

func (r *report) start(section string) {
	r.section = section
	fmt.Fprintf(r.out, "--- %s\n", section)
}

func (r *report) errorf(format string, args ...any) {
	r.errors++
	fmt.Fprintf(r.out, "FAIL [%s] %s\n", r.section, strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " | "))
}

func (r *report) ok(format string, args ...any) {
	r.checks++
	fmt.Fprintf(r.out, "ok   [%s] %s\n", r.section, fmt.Sprintf(format, args...))
}

// check records one named check: ok when cond holds, an error otherwise.
func (r *report) check(cond bool, format string, args ...any) {
	if cond {
		r.ok(format, args...)
	} else {
		r.errorf(format, args...)
	}
}

func main() {
	repo := flag.String("repo", ".", "repository root")
	keda := flag.String("keda", "", "directory of the github.com/kedacore/keda/v2 module (CRDs, scaler sources)")
	promOp := flag.String("prometheus-operator", "", "directory of the github.com/prometheus-operator/prometheus-operator module (CRDs)")
	flag.Parse()
	if *keda == "" || *promOp == "" {
		fmt.Fprintln(os.Stderr, "validate-deploy: -keda and -prometheus-operator are required")
		os.Exit(2)
	}
	root, err := filepath.Abs(*repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r := run(root, *keda, *promOp, os.Stdout)
	fmt.Printf("\n%d passed, %d failed\n", r.checks, r.errors)
	if r.errors > 0 {
		os.Exit(1)
	}
}

// run performs every check on the repository at root and returns the tally.
func run(root, keda, promOp string, out io.Writer) *report {
	r := &report{out: out}
	contract, err := loadContract(filepath.Join(root, "deploy/metrics.txt"))
	if err != nil {
		r.errorf("%v", err)
		return r
	}
	crds := []string{
		filepath.Join(keda, "config/crd/bases/keda.sh_scaledobjects.yaml"),
		filepath.Join(keda, "config/crd/bases/keda.sh_triggerauthentications.yaml"),
		filepath.Join(promOp, "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml"),
	}
	kafkaScaler := filepath.Join(keda, "pkg/scalers/kafka_scaler.go")

	checkExporter(r, root, contract)
	checkKubernetes(r, root, crds, kafkaScaler)
	checkKustomize(r, root)
	checkAlerts(r, root, contract)
	checkPrometheusConfig(r, root)
	schema, err := loadSQLSchema(root)
	if err != nil {
		r.errorf("%v", err)
		schema = &sqlSchema{tables: map[string][]string{}}
	}
	checkDashboard(r, root, contract, schema)
	checkGrafanaAlerts(r, root, provisionedDatasources(r, root), schema)
	checkDashboardSchema(r, root)
	checkCompose(r, root)
	checkDockerfile(r, root)
	checkWorkflow(r, root)
	checkReleaseWorkflow(r, root)
	checkTerraform(r, root)
	return r
}

// lines returns the non-empty, non-comment lines of a text file.
func lines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, nil
}
