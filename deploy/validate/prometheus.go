package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"sigs.k8s.io/yaml"
)

// checkAlerts parses deploy/prometheus/alerts.yml exactly as Prometheus loads a rule file
// (unknown fields rejected, PromQL and annotation templates checked), then holds every
// expression to the metrics contract.
func checkAlerts(r *report, root string, c *contract) {
	r.start("alert rules")
	path := filepath.Join(root, "deploy/prometheus/alerts.yml")
	p := newPromQLParser()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, p, logger)
	for _, err := range errs {
		r.errorf("%v", err)
	}
	if groups == nil {
		return
	}
	r.ok("%s parses as a Prometheus rule file (%d groups)", rel(root, path), len(groups.Groups))
	seen := map[string]bool{}
	for _, g := range groups.Groups {
		for _, rule := range g.Rules {
			name := rule.Alert + rule.Record
			if rule.Alert == "" {
				r.errorf("rule %q: only alerting rules are expected here", name)
				continue
			}
			r.check(!seen[name], "alert %s: unique name", name)
			seen[name] = true
			_, problems := c.checkExpr(p, rule.Expr)
			for _, pr := range problems {
				r.errorf("alert %s: %s", name, pr)
			}
			if len(problems) == 0 {
				r.ok("alert %s: expression uses only exported metrics and labels", name)
			}
			sev := rule.Labels["severity"]
			r.check(sev == "warning" || sev == "critical", "alert %s: severity label is warning or critical (%q)", name, sev)
			r.check(rule.Annotations["summary"] != "" && rule.Annotations["description"] != "",
				"alert %s: has summary and description annotations", name)
			if !strings.HasPrefix(name, "KafkaPipelineRebalance") {
				r.check(time.Duration(rule.For) > 0, "alert %s: has a for: duration (%s)", name, time.Duration(rule.For))
			}
		}
	}
	// The issue asks for these conditions; each must be covered by some alert.
	for _, want := range []string{"KafkaPipelineLagGrowing", "KafkaPipelineDeadLetterRateHigh",
		"KafkaPipelineNoProgress", "KafkaPipelineCommitStale", "KafkaPipelineDeliveryFailures", "KafkaPipelineNotReady"} {
		r.check(seen[want], "required alert %s is defined", want)
	}
}

// checkPrometheusConfig checks the compose profile's scrape config: it loads the alert rules
// where compose mounts them and scrapes the pipeline's port under the job name the alerts use.
func checkPrometheusConfig(r *report, root string) {
	r.start("prometheus.yml")
	path := filepath.Join(root, "deploy/prometheus/prometheus.yml")
	b, err := os.ReadFile(path)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	var cfg struct {
		Global        map[string]any `json:"global"`
		RuleFiles     []string       `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName     string `json:"job_name"`
			MetricsPath string `json:"metrics_path"`
			DNSSD       []struct {
				Names           []string `json:"names"`
				Type            string   `json:"type"`
				Port            int      `json:"port"`
				RefreshInterval string   `json:"refresh_interval"`
			} `json:"dns_sd_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		r.errorf("%s: %v", rel(root, path), err)
		return
	}
	r.ok("%s decodes strictly", rel(root, path))
	r.check(slices.Contains(cfg.RuleFiles, "/etc/prometheus/alerts.yml"), "loads /etc/prometheus/alerts.yml (compose mounts alerts.yml there)")
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName == "kafka-pipeline" {
			found = true
			r.check(sc.MetricsPath == "/metrics", "job kafka-pipeline scrapes /metrics")
			r.check(len(sc.DNSSD) == 1 && sc.DNSSD[0].Port == 9898 && slices.Contains(sc.DNSSD[0].Names, "pipeline") && sc.DNSSD[0].Type == "A",
				"job kafka-pipeline discovers every replica of the compose service pipeline on port 9898")
		}
	}
	r.check(found, "has a scrape job named kafka-pipeline (the alerts' up{job=...})")
}

var grafanaVar = regexp.MustCompile(`\$__(rate_interval|interval|range)\b`)

// checkDashboard parses the dashboard JSON and every PromQL query in it (panels and template
// variables), after substituting Grafana's interval variables as Grafana does before it sends
// the query.
func checkDashboard(r *report, root string, c *contract, schema *sqlSchema) {
	r.start("grafana dashboard")
	datasources := provisionedDatasources(r, root)
	sqlColumns := map[string]bool{}
	dir := filepath.Join(root, "deploy/grafana/dashboards")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	r.check(len(files) > 0, "dashboards found in %s", rel(root, dir))
	p := newPromQLParser()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		var d struct {
			UID        string           `json:"uid"`
			Title      string           `json:"title"`
			Panels     []map[string]any `json:"panels"`
			Templating struct {
				List []map[string]any `json:"list"`
			} `json:"templating"`
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			r.errorf("%s: not valid JSON: %v", rel(root, f), err)
			continue
		}
		r.ok("%s is valid JSON (uid %q, %d panels)", rel(root, f), d.UID, len(d.Panels))
		r.check(d.UID != "" && d.Title != "", "%s: has uid and title", rel(root, f))
		ids := map[float64]bool{}
		used := map[string]bool{}
		queries := 0
		for _, panel := range d.Panels {
			title, _ := panel["title"].(string)
			id, _ := panel["id"].(float64)
			r.check(!ids[id], "panel %q: unique id %v", title, id)
			ids[id] = true
			if panel["type"] == "row" {
				continue
			}
			_, hasGrid := panel["gridPos"].(map[string]any)
			r.check(hasGrid, "panel %q: has gridPos", title)
			targets, _ := panel["targets"].([]any)
			r.check(len(targets) > 0, "panel %q: has queries", title)
			for _, t := range targets {
				target, _ := t.(map[string]any)
				if dsType(target) == postgresType || (dsType(target) == "" && dsType(panel) == postgresType) {
					queries++
					if uid := str(target, "datasource", "uid"); !strings.HasPrefix(uid, "$") && datasources[uid] != postgresType {
						r.errorf("panel %q: datasource %s is not a provisioned PostgreSQL datasource", title, uid)
					}
					sql, _ := target["rawSql"].(string)
					columns, problems := schema.checkSQL(sql)
					for _, col := range columns {
						sqlColumns[col] = true
					}
					for _, pr := range problems {
						r.errorf("panel %q: %s (query %s)", title, pr, sql)
					}
					continue
				}
				expr, _ := target["expr"].(string)
				queries++
				names, problems := c.checkExpr(p, grafanaVar.ReplaceAllString(expr, "5m"))
				for _, n := range names {
					m, _, _ := c.lookup(n)
					used[m.name] = true
				}
				for _, pr := range problems {
					r.errorf("panel %q: %s (query %s)", title, pr, expr)
				}
			}
		}
		r.ok("%d panel queries checked", queries)
		for _, v := range d.Templating.List {
			q, ok := v["query"].(map[string]any)
			if !ok {
				continue
			}
			s, _ := q["query"].(string)
			inner := regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`).FindStringSubmatch(s)
			if inner == nil {
				r.errorf("variable %v: expected label_values(selector, label), got %q", v["name"], s)
				continue
			}
			_, problems := c.checkExpr(p, inner[1])
			for _, pr := range problems {
				r.errorf("variable %v: %s", v["name"], pr)
			}
			_, labels, _ := c.lookup(strings.SplitN(inner[1], "{", 2)[0])
			r.check(slices.Contains(labels, inner[2]) || slices.Contains(c.targetLabels, inner[2]),
				"variable %v: label %s exists on %s", v["name"], inner[2], inner[1])
		}
		if d.UID != "kafka-pipeline" {
			continue
		}
		// The list of what the dashboard shows.
		for _, want := range []string{"kafka_pipeline_events_received_total", "kafka_pipeline_events_dead_lettered_total",
			"kafka_pipeline_consumer_lag", "kafka_pipeline_processing_latency_seconds", "kafka_pipeline_in_flight_records",
			"kafka_pipeline_channel_depth", "kafka_pipeline_insights_windows_published_total", "kafka_pipeline_ready"} {
			r.check(used[want], "dashboard shows %s", want)
		}
	}
	// Provisioning: the datasource uid the dashboard defaults to, the folder compose mounts.
	ds, err := os.ReadFile(filepath.Join(root, "deploy/grafana/provisioning/datasources/prometheus.yml"))
	r.check(err == nil && strings.Contains(string(ds), "uid: prometheus") && strings.Contains(string(ds), "url: http://prometheus:9090"),
		"datasource provisioning: uid prometheus at http://prometheus:9090")
	checkInsightsProvisioning(r, root, datasources, sqlColumns)
	pv, err := os.ReadFile(filepath.Join(root, "deploy/grafana/provisioning/dashboards/kafka-pipeline.yml"))
	r.check(err == nil && strings.Contains(string(pv), "path: /etc/grafana/dashboards"),
		"dashboard provisioning reads /etc/grafana/dashboards (compose mounts the dashboards there)")
}

// dsType is the datasource type of a panel or query ("" when it names none).
func dsType(v map[string]any) string {
	return str(v, "datasource", "type")
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}
