package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseDockerfile parses the Dockerfile with BuildKit's parser and its build-check linter
// (the rules `docker build --check` applies while parsing); lint warnings are returned.
func parseDockerfile(root string) ([]instructions.Stage, []string, error) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return nil, nil, err
	}
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	for _, w := range res.Warnings {
		warnings = append(warnings, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		warnings = append(warnings, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	return stages, warnings, err
}

func dockerfileUser(root string) string {
	stages, _, err := parseDockerfile(root)
	if err != nil || len(stages) == 0 {
		return ""
	}
	user := ""
	for _, cmd := range stages[len(stages)-1].Commands {
		if u, ok := cmd.(*instructions.UserCommand); ok {
			user = u.User
		}
	}
	return user
}

func checkDockerfile(r *report, root string) {
	r.start("Dockerfile")
	stages, warnings, err := parseDockerfile(root)
	if err != nil {
		r.errorf("Dockerfile: %v", err)
		return
	}
	r.ok("Dockerfile parses (BuildKit), %d stages", len(stages))
	for _, w := range warnings {
		r.errorf("lint: %s", w)
	}
	if len(warnings) == 0 {
		r.ok("no BuildKit lint warnings")
	}
	r.check(len(stages) >= 2, "multi-stage build")
	final := stages[len(stages)-1]
	var (
		user, entry, cmd, expose, health, runs []string
		copiesFromBuilder                      bool
	)
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = append(user, c.User)
		case *instructions.EntrypointCommand:
			entry = c.CmdLine
		case *instructions.CmdCommand:
			cmd = c.CmdLine
		case *instructions.ExposeCommand:
			expose = append(expose, c.Ports...)
		case *instructions.HealthCheckCommand:
			health = c.Health.Test
		case *instructions.CopyCommand:
			copiesFromBuilder = copiesFromBuilder || c.From != ""
		case *instructions.RunCommand:
			runs = append(runs, strings.Join(c.CmdLine, " "))
		}
	}
	r.check(len(user) > 0 && !slices.Contains([]string{"root", "0", "0:0"}, user[len(user)-1]), "runtime runs as a non-root user (%v)", user)
	r.check(slices.Equal(entry, []string{"kafka-pipeline"}), "ENTRYPOINT [\"kafka-pipeline\"]")
	r.check(slices.Equal(cmd, []string{"run"}), "CMD [\"run\"]")
	r.check(slices.Contains(expose, "9898"), "EXPOSE 9898")
	r.check(len(health) > 0 && strings.Contains(strings.Join(health, " "), "/health"), "HEALTHCHECK probes /health")
	r.check(copiesFromBuilder, "runtime copies the binary from the builder stage")
	builder := strings.Builder{}
	for _, s := range stages[:len(stages)-1] {
		for _, c := range s.Commands {
			if rc, ok := c.(*instructions.RunCommand); ok {
				builder.WriteString(strings.Join(rc.CmdLine, " ") + "\n")
			}
		}
	}
	r.check(strings.Contains(builder.String(), "cargo build --release --locked"), "builder runs cargo build --release --locked")
	di, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	r.check(err == nil && slices.Contains(strings.Fields(string(di)), "target/"), ".dockerignore excludes target/")
}
