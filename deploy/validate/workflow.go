package main

import (
	"os"
	"path/filepath"
	"strings"
)

// checkWorkflow checks that the hosted-CI workflow runs what .ci/run runs, with the caches and
// Java it needs. (scripts/validate-deploy.sh lints its syntax with actionlint, a separate
// binary: its YAML library version conflicts with this module's.)
func checkWorkflow(r *report, root string) {
	r.start("github workflow")
	path := filepath.Join(root, ".github/workflows/ci.yml")
	src, err := os.ReadFile(path)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	s := string(src)
	r.check(strings.Contains(s, "run: bash .ci/run"), "the workflow runs bash .ci/run")
	r.check(strings.Contains(s, "runs-on: ubuntu-latest"), "runs on ubuntu-latest")
	r.check(strings.Contains(s, "java-version: \"17\""), "sets up Java 17 for the broker")
	r.check(strings.Contains(s, "~/.cache/kafka-pipeline") && strings.Contains(s, "~/.cargo/registry") && strings.Contains(s, "target"),
		"caches ~/.cargo, target and ~/.cache/kafka-pipeline")
	r.check(strings.Contains(s, "go-version-file: deploy/validate/go.mod"), "sets up the Go version deploy/validate needs")
}
