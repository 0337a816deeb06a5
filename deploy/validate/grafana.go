package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// checkDashboardSchema decodes each dashboard strictly into the Grafana Foundation SDK's
// dashboard types (generated from Grafana's schema): unknown fields, wrong types and missing
// required fields fail, in the dashboard and in every panel's options and queries.
func checkDashboardSchema(r *report, root string) {
	r.start("grafana dashboard schema")
	plugins.RegisterDefaultPlugins()
	files, _ := filepath.Glob(filepath.Join(root, "deploy/grafana/dashboards/*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		var d dashboard.Dashboard
		err = d.UnmarshalJSONStrict(b)
		// The SDK returns its error list as a typed nil slice when all is well.
		if be, ok := err.(cog.BuildErrors); ok && len(be) == 0 {
			err = nil
		}
		if err != nil {
			for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
				if line = strings.TrimSpace(line); line != "" {
					r.errorf("%s: %s", rel(root, f), line)
				}
			}
			continue
		}
		r.ok("%s decodes strictly into Grafana's dashboard schema (%d panels)", rel(root, f), len(d.Panels))
	}
}
