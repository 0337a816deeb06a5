package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
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

// checkReleaseWorkflow checks the release workflow's shape: a version tag runs .ci/run, then the
// binary and the image (pushed with an SBOM and provenance), then staging, then production in
// the environment `production`, whose required reviewers (repository settings) are the manual
// gate. actionlint checks its syntax (scripts/validate-deploy.sh).
func checkReleaseWorkflow(r *report, root string) {
	r.start("release workflow")
	path := filepath.Join(root, ".github/workflows/release.yml")
	src, err := os.ReadFile(path)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	var wf map[string]any
	if err := yaml.Unmarshal(src, &wf); err != nil {
		r.errorf("release.yml: %v", err)
		return
	}
	// YAML 1.1 reads the key `on` as the boolean true.
	on := "on"
	if wf[on] == nil {
		on = "true"
	}
	tags, _ := dig(wf, on, "push", "tags").([]any)
	triggers, _ := wf[on].(map[string]any)
	r.check(len(tags) > 0 && dig(wf, on, "push", "branches") == nil && len(triggers) == 1,
		"runs on pushed version tags only (%v)", tags)
	jobs, _ := wf["jobs"].(map[string]any)
	job := func(name string) map[string]any {
		j, _ := jobs[name].(map[string]any)
		return j
	}
	needs := func(name string) []string {
		switch n := job(name)["needs"].(type) {
		case string:
			return []string{n}
		case []any:
			var out []string
			for _, x := range n {
				out = append(out, fmt.Sprint(x))
			}
			return out
		}
		return nil
	}
	steps := func(name string) []map[string]any {
		var out []map[string]any
		ss, _ := job(name)["steps"].([]any)
		for _, s := range ss {
			if m, ok := s.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	runs := func(name, text string) bool {
		for _, s := range steps(name) {
			if strings.Contains(fmt.Sprint(s["run"]), text) {
				return true
			}
		}
		return false
	}
	r.check(runs("ci", "bash .ci/run"), "job ci runs bash .ci/run")
	r.check(slices.Contains(needs("build"), "ci") && runs("build", "cargo build --release --locked"),
		"job build needs ci and builds the release binary")
	pushed := false
	for _, s := range steps("build") {
		if strings.HasPrefix(fmt.Sprint(s["uses"]), "docker/build-push-action@") {
			with := toStringMap(s["with"])
			pushed = with["push"] == "true" && with["sbom"] == "true" && strings.HasPrefix(with["provenance"], "mode=max")
		}
	}
	r.check(pushed, "job build pushes the image with an SBOM and provenance (docker/build-push-action: push, sbom, provenance mode=max)")
	for _, env := range []string{"staging", "production"} {
		name := "deploy-" + env
		r.check(dig(job(name), "environment", "name") == env, "%s job runs in the environment %s", env, env)
		r.check(runs(name, "terraform apply") && runs(name, "image_tag=${{ needs.build.outputs.version }}"),
			"%s job applies deploy/terraform with the released image tag", env)
	}
	r.check(slices.Contains(needs("deploy-staging"), "build"), "staging deploys after the build")
	r.check(slices.Contains(needs("deploy-production"), "deploy-staging"), "production deploys only after staging")
	r.check(strings.Contains(string(src), "Required reviewers"), "release.yml says where the production reviewers are configured")
}
