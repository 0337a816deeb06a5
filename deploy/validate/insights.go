package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"sigs.k8s.io/yaml"
)

// sqlSchema is the database the sink creates: tables and their columns, read from the
// migrations with PostgreSQL's own parser (libpg_query).
type sqlSchema struct {
	tables map[string][]string
}

func loadSQLSchema(root string) (*sqlSchema, error) {
	files, _ := filepath.Glob(filepath.Join(root, "migrations/*.sql"))
	if len(files) == 0 {
		return nil, fmt.Errorf("no migrations in %s", filepath.Join(root, "migrations"))
	}
	s := &sqlSchema{tables: map[string][]string{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		tree, err := parseSQL(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", rel(root, f), err)
		}
		walk(tree, func(key string, node map[string]any) {
			if key != "CreateStmt" {
				return
			}
			name := str(node["relation"], "relname")
			elts, _ := node["tableElts"].([]any)
			for _, e := range elts {
				if col := str(e, "ColumnDef", "colname"); col != "" {
					s.tables[name] = append(s.tables[name], col)
				}
			}
		})
	}
	// The migration runner's own table (created in src/commands/sink/store.rs).
	s.tables["sink_schema_version"] = []string{"version", "name", "applied_at"}
	return s, nil
}

func parseSQL(sql string) (map[string]any, error) {
	out, err := pg_query.ParseToJSON(sql)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	err = json.Unmarshal([]byte(out), &tree)
	return tree, err
}

// walk calls f for every object under a key ({"SelectStmt": {...}} calls f("SelectStmt", {...})).
func walk(v any, f func(key string, node map[string]any)) {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			if m, ok := child.(map[string]any); ok {
				f(k, m)
			}
			walk(child, f)
		}
	case []any:
		for _, child := range t {
			walk(child, f)
		}
	}
}

// str follows keys through nested objects to a string ("" when absent).
func str(v any, keys ...string) string {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

var (
	timeFilter = regexp.MustCompile(`\$__timeFilter\(([^)]*)\)`)
	anyMacro   = regexp.MustCompile(`\$__\w+`)
)

// expandMacros replaces Grafana's SQL macros as Grafana does before it sends the query;
// a macro this check does not know is a problem of its own.
func expandMacros(sql string) (string, []string) {
	sql = timeFilter.ReplaceAllString(sql, "$1 BETWEEN '2024-07-10T00:00:00Z' AND '2024-07-11T00:00:00Z'")
	sql = strings.ReplaceAll(sql, "$__interval", "'1m'")
	var problems []string
	for _, m := range anyMacro.FindAllString(sql, -1) {
		problems = append(problems, fmt.Sprintf("macro %s is not one this check knows ($__timeFilter, $__interval)", m))
	}
	return sql, problems
}

// checkSQL parses a query with PostgreSQL's parser and checks every table and column it names
// against the migrations: a table must exist; a column qualified by a table's alias must be one
// of its columns; an unqualified column must belong to a table of the query or be an output
// alias. Columns of set-returning functions (jsonb_each_text's key, value) are not checked.
// Returns the columns named and the problems.
func (s *sqlSchema) checkSQL(raw string) (columns []string, problems []string) {
	sql, problems := expandMacros(raw)
	tree, err := parseSQL(sql)
	if err != nil {
		return nil, append(problems, fmt.Sprintf("does not parse: %v", err))
	}
	aliases := map[string]string{} // alias or name -> table
	functionAliases := map[string]bool{}
	outputs := map[string]bool{}
	walk(tree, func(key string, node map[string]any) {
		switch key {
		case "RangeVar":
			name := str(node, "relname")
			if _, ok := s.tables[name]; !ok {
				problems = append(problems, fmt.Sprintf("table %s is not created by migrations/", name))
				return
			}
			aliases[name] = name
			if a := str(node["alias"], "aliasname"); a != "" {
				aliases[a] = name
			}
		case "RangeFunction":
			if a := str(node["alias"], "aliasname"); a != "" {
				functionAliases[a] = true
			}
		case "ResTarget":
			if n := str(node, "name"); n != "" {
				outputs[n] = true
			}
		}
	})
	walk(tree, func(key string, node map[string]any) {
		if key != "ColumnRef" {
			return
		}
		fields, _ := node["fields"].([]any)
		var names []string
		for _, f := range fields {
			names = append(names, str(f, "String", "sval"))
		}
		columns = append(columns, names[len(names)-1])
		switch {
		case len(names) == 2 && functionAliases[names[0]]:
		case len(names) == 2:
			table, ok := aliases[names[0]]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s.%s: no table or alias %q", names[0], names[1], names[0]))
			} else if names[1] != "" && !slices.Contains(s.tables[table], names[1]) {
				problems = append(problems, fmt.Sprintf("table %s has no column %q", table, names[1]))
			}
		case len(names) == 1 && names[0] != "":
			found := outputs[names[0]]
			for _, t := range aliases {
				found = found || slices.Contains(s.tables[t], names[0])
			}
			if !found {
				problems = append(problems, fmt.Sprintf("no column %q in %v", names[0], sortedValues(aliases)))
			}
		}
	})
	return columns, problems
}

func sortedValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// provisionedDatasources reads deploy/grafana/provisioning/datasources/*.yml: uid -> type.
func provisionedDatasources(r *report, root string) map[string]string {
	files, _ := filepath.Glob(filepath.Join(root, "deploy/grafana/provisioning/datasources/*.yml"))
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		var file struct {
			APIVersion  int `json:"apiVersion"`
			Datasources []struct {
				Name           string            `json:"name"`
				UID            string            `json:"uid"`
				Type           string            `json:"type"`
				Access         string            `json:"access"`
				URL            string            `json:"url"`
				User           string            `json:"user"`
				IsDefault      bool              `json:"isDefault"`
				Editable       bool              `json:"editable"`
				JSONData       map[string]any    `json:"jsonData"`
				SecureJSONData map[string]string `json:"secureJsonData"`
			} `json:"datasources"`
		}
		if err := yaml.UnmarshalStrict(b, &file); err != nil {
			r.errorf("%s: %v", rel(root, f), err)
			continue
		}
		for _, d := range file.Datasources {
			out[d.UID] = d.Type
		}
	}
	return out
}

const postgresType = "grafana-postgresql-datasource"

// checkInsightsProvisioning checks the PostgreSQL datasource, and that the insights dashboard
// shows what the issue asks for.
func checkInsightsProvisioning(r *report, root string, datasources map[string]string, sqlColumns map[string]bool) {
	r.check(datasources["insights-postgres"] == postgresType,
		"datasource provisioning: uid insights-postgres is a PostgreSQL datasource")
	ds, _ := os.ReadFile(filepath.Join(root, "deploy/grafana/provisioning/datasources/postgres.yml"))
	r.check(strings.Contains(string(ds), "url: postgres:5432") && strings.Contains(string(ds), "database: kafka_pipeline"),
		"PostgreSQL datasource points at the compose service postgres, database kafka_pipeline")
	// Events per window, invalid share, device split, top locales, distinct users, dead letters by code.
	for _, want := range []string{"received", "dead_lettered", "missing_device_type", "by_device_type", "by_locale",
		"users_hll", "distinct_users", "dead_lettered_by_code"} {
		r.check(sqlColumns[want], "insights dashboard shows insight_windows.%s", want)
	}
}

// alertFile is Grafana's alert rule provisioning format (only the fields used here; unknown
// fields are rejected).
type alertFile struct {
	APIVersion int `json:"apiVersion"`
	Groups     []struct {
		OrgID    int    `json:"orgId"`
		Name     string `json:"name"`
		Folder   string `json:"folder"`
		Interval string `json:"interval"`
		Rules    []struct {
			UID       string `json:"uid"`
			Title     string `json:"title"`
			Condition string `json:"condition"`
			Data      []struct {
				RefID             string `json:"refId"`
				RelativeTimeRange *struct {
					From int `json:"from"`
					To   int `json:"to"`
				} `json:"relativeTimeRange"`
				DatasourceUID string         `json:"datasourceUid"`
				Model         map[string]any `json:"model"`
			} `json:"data"`
			NoDataState  string            `json:"noDataState"`
			ExecErrState string            `json:"execErrState"`
			For          string            `json:"for"`
			Labels       map[string]string `json:"labels"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// checkGrafanaAlerts decodes deploy/grafana/provisioning/alerting/*.yml strictly and checks
// each rule: queries on provisioned datasources, SQL against the migrations, the condition
// naming one of the rule's queries, expressions referring to queries that exist.
func checkGrafanaAlerts(r *report, root string, datasources map[string]string, schema *sqlSchema) {
	r.start("grafana alert rules")
	files, _ := filepath.Glob(filepath.Join(root, "deploy/grafana/provisioning/alerting/*.yml"))
	r.check(len(files) > 0, "alert rule files found in deploy/grafana/provisioning/alerting")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		var file alertFile
		if err := yaml.UnmarshalStrict(b, &file); err != nil {
			r.errorf("%s: %v", rel(root, f), err)
			continue
		}
		for _, g := range file.Groups {
			for _, rule := range g.Rules {
				refs := map[string]bool{}
				for _, q := range rule.Data {
					refs[q.RefID] = true
				}
				r.check(rule.UID != "" && rule.Title != "" && rule.For != "" && rule.Annotations["summary"] != "",
					"rule %q: uid, title, for and a summary", rule.Title)
				r.check(refs[rule.Condition], "rule %q: condition %s is one of its queries", rule.Title, rule.Condition)
				for _, q := range rule.Data {
					if q.DatasourceUID == "__expr__" {
						expr, _ := q.Model["expression"].(string)
						r.check(refs[expr] && expr != q.RefID, "rule %q: expression %s reads query %q", rule.Title, q.RefID, expr)
						continue
					}
					typ, ok := datasources[q.DatasourceUID]
					if !ok {
						r.errorf("rule %q: datasource %s is not provisioned", rule.Title, q.DatasourceUID)
						continue
					}
					if typ != postgresType {
						continue
					}
					sql, _ := q.Model["rawSql"].(string)
					_, problems := schema.checkSQL(sql)
					for _, p := range problems {
						r.errorf("rule %q query %s: %s", rule.Title, q.RefID, p)
					}
					if len(problems) == 0 {
						r.ok("rule %q query %s: SQL parses and names only tables and columns of migrations/", rule.Title, q.RefID)
					}
				}
			}
		}
	}
}
