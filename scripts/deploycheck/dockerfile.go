package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	digest "github.com/opencontainers/go-digest"
)

// The labels the final image must carry (OCI annotations).
var requiredLabels = []string{
	"org.opencontainers.image.title",
	"org.opencontainers.image.description",
	"org.opencontainers.image.source",
	"org.opencontainers.image.licenses",
	"org.opencontainers.image.version",
}

// offlineResolver answers BuildKit's base-image lookups without a registry: these machines
// reach none. The checks that need a base image's real configuration (its platform, its
// environment) therefore see an empty linux/amd64 image.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return ref, "", []byte(`{"architecture":"amd64","os":"linux","config":{}}`), nil
}

// checkDockerfile runs BuildKit's own checks (those of `docker build --check`: it converts
// every stage as a build would) and then the rules this project holds its image to.
func checkDockerfile(root, file string) int {
	r := &report{check: "dockerfile " + file}
	dt, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		r.fail("%v", err)
		return r.finish("")
	}

	sm := llb.NewSourceMap(nil, file, "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	lint, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		SourceMap:    sm,
		MetaResolver: offlineResolver{},
	})
	if err != nil {
		r.fail("BuildKit could not check it: %v", err)
	} else {
		if lint.Error != nil {
			r.fail("BuildKit refuses it: %s", lint.Error.Message)
		}
		for _, w := range lint.Warnings {
			var line int32
			if rs := w.Location.GetRanges(); len(rs) > 0 {
				line = rs[0].GetStart().GetLine()
			}
			r.fail("line %d: BuildKit check %s: %s (%s)", line, w.RuleName, w.Detail, w.URL)
		}
	}

	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		r.fail("does not parse: %v", err)
		return r.finish("")
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		r.fail("does not parse: %v", err)
		return r.finish("")
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	lex := shell.NewLex(parser.DefaultEscapeToken)
	expand := func(s string) string {
		out, _, err := lex.ProcessWord(s, shell.EnvsFromSlice(envList(args)))
		if err != nil {
			return s
		}
		return out
	}

	if len(stages) < 2 {
		r.fail("%d stage; build in one stage and copy the result into a small runtime stage", len(stages))
	}
	known := map[string]int{}
	for i, st := range stages {
		base := expand(st.BaseName)
		if _, isStage := known[strings.ToLower(base)]; !isStage && !strings.EqualFold(base, "scratch") {
			pinned(r, fmt.Sprintf("stage %d (%s) FROM", i, stageName(st, i)), base)
		}
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if c.From == "" {
					continue
				}
				from := strings.ToLower(expand(c.From))
				if n, err := strconv.Atoi(from); err == nil && n >= 0 && n < i {
					continue
				}
				if _, ok := known[from]; !ok {
					r.fail("line %d: COPY --from=%s names no earlier stage (stages before it: %s); name a stage, or add one FROM the image",
						c.Location()[0].Start.Line, c.From, strings.Join(stageNames(stages[:i]), ", "))
				}
			case *instructions.RunCommand:
				aptChecks(r, c)
			}
		}
		if st.Name != "" {
			known[strings.ToLower(st.Name)] = i
		}
	}
	if len(stages) == 0 {
		return r.finish("")
	}
	final := stages[len(stages)-1]
	finalChecks(r, root, final, args)
	return r.finish(fmt.Sprintf("BuildKit's checks pass; %d stages (%s); the final stage runs as a numeric non-root user, has a HEALTHCHECK and the OCI labels; base images pinned; COPY --from names stages; apt lists removed",
		len(stages), strings.Join(stageNames(stages), ", ")))
}

var (
	aptRun     = regexp.MustCompile(`\bapt(-get)?\s+(update|install)\b`)
	aptListsRm = regexp.MustCompile(`\brm\s+-(rf|fr)\s+/var/lib/apt/lists(/\*)?(\s|$|;|&)`)
	// [workspace.package] of Cargo.toml, which the image's labels repeat.
	licenseLine    = regexp.MustCompile(`(?m)^license\s*=\s*"([^"]+)"`)
	repositoryLine = regexp.MustCompile(`(?m)^repository\s*=\s*"([^"]+)"`)
)

// aptChecks: a RUN that fetches package lists removes them in the same layer.
func aptChecks(r *report, c *instructions.RunCommand) {
	cmd := strings.Join(c.CmdLine, " ")
	if aptRun.MatchString(cmd) && !aptListsRm.MatchString(cmd) {
		r.fail("line %d: RUN apt-get update/install leaves /var/lib/apt/lists in the layer; end the same RUN with `&& rm -rf /var/lib/apt/lists/*`",
			c.Location()[0].Start.Line)
	}
}

// finalChecks: the runtime stage's user, health check and labels (their values as the build
// sees them: quotes removed, ARG defaults and ENV substituted).
func finalChecks(r *report, root string, final instructions.Stage, metaArgs map[string]string) {
	var user *instructions.UserCommand
	var health *instructions.HealthCheckCommand
	labels := map[string]string{}
	env := map[string]string{}
	lex := shell.NewLex(parser.DefaultEscapeToken)
	word := func(s string) string {
		out, _, err := lex.ProcessWord(s, shell.EnvsFromSlice(envList(env)))
		if err != nil {
			r.fail("cannot expand %q: %v", s, err)
		}
		return out
	}
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				if kv.Value != nil {
					env[kv.Key] = word(*kv.Value)
				} else if v, ok := metaArgs[kv.Key]; ok {
					env[kv.Key] = v
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = word(kv.Value)
			}
		case *instructions.UserCommand:
			user = c
		case *instructions.HealthCheckCommand:
			health = c
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				labels[word(kv.Key)] = word(kv.Value)
			}
		}
	}
	switch {
	case user == nil:
		r.fail("the final stage has no USER, so it runs as root; add USER <uid>:<gid> (numeric)")
	default:
		uid := strings.SplitN(user.User, ":", 2)[0]
		n, err := strconv.Atoi(uid)
		switch {
		case err != nil:
			r.fail("line %d: USER %s: give a numeric UID (Kubernetes' runAsNonRoot can only verify a number)", user.Location()[0].Start.Line, user.User)
		case n == 0:
			r.fail("line %d: USER %s is root; run as an unprivileged UID", user.Location()[0].Start.Line, user.User)
		}
	}
	if health == nil || len(health.Health.Test) == 0 || strings.EqualFold(health.Health.Test[0], "NONE") {
		r.fail("the final stage has no HEALTHCHECK; add one that GETs /healthz")
	}
	for _, k := range requiredLabels {
		if strings.TrimSpace(labels[k]) == "" {
			r.fail("the final stage has no LABEL %s; add it (OCI annotations)", k)
		}
	}
	cargo, err := os.ReadFile(filepath.Join(root, "Cargo.toml"))
	if err != nil {
		r.fail("%v", err)
		return
	}
	for _, same := range []struct {
		label string
		key   *regexp.Regexp
	}{{"org.opencontainers.image.licenses", licenseLine}, {"org.opencontainers.image.source", repositoryLine}} {
		got, ok := labels[same.label]
		if m := same.key.FindSubmatch(cargo); ok && m != nil && string(m[1]) != got {
			r.fail("LABEL %s=%q, but Cargo.toml says %q; make them agree", same.label, got, m[1])
		}
	}
}

func stageName(st instructions.Stage, i int) string {
	if st.Name != "" {
		return st.Name
	}
	return strconv.Itoa(i)
}

func stageNames(stages []instructions.Stage) []string {
	out := make([]string, len(stages))
	for i, st := range stages {
		out[i] = stageName(st, i)
	}
	return out
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}
