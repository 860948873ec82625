package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
)

// checkCompose loads the compose file with compose-go, the loader of `docker compose` (schema,
// interpolation, merge keys, normalisation, references between services, networks, volumes,
// configs and secrets), then checks what the loader leaves to `up`: that every file and folder
// the file names exists (a missing bind-mount source would become an empty directory) and that
// every image pulled from a registry is pinned.
func checkCompose(root, file string) int {
	r := &report{check: "compose " + file}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, file)},
		cli.WithWorkingDirectory(root),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		r.fail("%v", err)
		return r.finish("")
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		r.fail("does not load as Docker Compose loads it: %v", err)
		return r.finish("")
	}

	rel := func(p string) string {
		if q, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(q, "..") {
			return q
		}
		return p
	}
	exists := func(what, p string, wantDir bool) {
		st, err := os.Stat(p)
		switch {
		case err != nil:
			r.fail("%s: %s does not exist in the repository; create it or fix the path", what, rel(p))
		case wantDir && !st.IsDir():
			r.fail("%s: %s is a file, not a folder", what, rel(p))
		}
	}

	built := map[string]bool{}
	for _, s := range project.Services {
		if s.Build != nil && s.Image != "" {
			built[s.Image] = true
		}
	}
	names := project.ServiceNames()
	sort.Strings(names)
	files := 0
	for _, name := range names {
		s := project.Services[name]
		what := "service " + name
		for dep := range s.DependsOn {
			if _, ok := project.Services[dep]; !ok {
				r.fail("%s: depends_on names %q, which is no service here (services: %s)", what, dep, strings.Join(names, ", "))
			}
		}
		if b := s.Build; b != nil && !strings.Contains(b.Context, "://") {
			exists(what+" build.context", b.Context, true)
			if b.Dockerfile != "" && b.DockerfileInline == "" {
				df := b.Dockerfile
				if !filepath.IsAbs(df) {
					df = filepath.Join(b.Context, df)
				}
				exists(what+" build.dockerfile", df, false)
				files++
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				exists(fmt.Sprintf("%s volume %s", what, v.Target), v.Source, false)
				files++
			}
		}
		for _, e := range s.EnvFiles {
			if bool(e.Required) {
				exists(what+" env_file", e.Path, false)
				files++
			}
		}
		if s.Image != "" && s.Build == nil && !built[s.Image] {
			pinned(r, what, s.Image)
		}
	}
	for name, c := range project.Configs {
		if c.File != "" {
			exists("config "+name, c.File, false)
			files++
		}
	}
	for name, c := range project.Secrets {
		if c.File != "" {
			exists("secret "+name, c.File, false)
			files++
		}
	}
	drained := drainChecks(r, project, names)
	return r.finish(fmt.Sprintf("loads as Docker Compose loads it; %d services, their depends_on name services; all %d files it names exist; images pinned; %s",
		len(names), files, drained))
}

// The drain deadline of `argus work` when neither the config file nor the environment sets it
// (`argus work --help`: --drain-timeout [default: 20s]), and Docker's stop timeout.
const (
	defaultDrain = 20 * time.Second
	defaultGrace = 10 * time.Second
	argusConfig  = "/etc/argus/argus.toml"
)

// drainChecks: every `argus work` service's stop_grace_period outlasts its drain deadline
// ([worker] drain_timeout of the argus.toml it mounts, or ARGUS_WORKER__DRAIN_TIMEOUT), so
// Docker's SIGKILL never cuts a drain short (the inputs in flight would then be redone).
func drainChecks(r *report, project *types.Project, names []string) string {
	var checked []string
	for _, name := range names {
		s := project.Services[name]
		if len(s.Command) == 0 || s.Command[0] != "work" {
			continue
		}
		drain, from := defaultDrain, "the default"
		for _, c := range s.Configs {
			if c.Target != argusConfig {
				continue
			}
			if cfg, ok := project.Configs[c.Source]; ok && cfg.File != "" {
				dt, err := os.ReadFile(cfg.File)
				if err != nil {
					continue // reported above as a missing file
				}
				if v, ok := tomlString(string(dt), "worker", "drain_timeout"); ok {
					d, err := argusDuration(v)
					if err != nil {
						r.fail("service %s: [worker] drain_timeout = %q in %s: %v", name, v, cfg.File, err)
						continue
					}
					drain, from = d, "[worker] drain_timeout of "+filepath.Base(cfg.File)
				}
			}
		}
		if v, ok := s.Environment["ARGUS_WORKER__DRAIN_TIMEOUT"]; ok && v != nil {
			d, err := argusDuration(*v)
			if err != nil {
				r.fail("service %s: ARGUS_WORKER__DRAIN_TIMEOUT=%q: %v", name, *v, err)
				continue
			}
			drain, from = d, "ARGUS_WORKER__DRAIN_TIMEOUT"
		}
		grace := defaultGrace
		if s.StopGracePeriod != nil {
			grace = time.Duration(*s.StopGracePeriod)
		}
		// After the drain: the producer's flush (10 s) and the wait for the revocation (2 s),
		// as scripts/check-k8s.py counts them (SHUTDOWN_AFTER_DRAIN_S).
		if grace <= drain+shutdownAfterDrain {
			r.fail("service %s: stop_grace_period %s is not longer than the workers' drain deadline %s (%s) + %s (output flush, leaving the group): Docker's SIGKILL would cut the shutdown short; raise stop_grace_period above it",
				name, grace, drain, from, shutdownAfterDrain)
			continue
		}
		checked = append(checked, fmt.Sprintf("%s stops within %s, drains within %s", name, grace, drain))
	}
	return strings.Join(checked, "; ")
}

// shutdownAfterDrain is what a worker's shutdown takes after its drain deadline: the
// producer's flush of the last outputs (10 s) and the revocation wait (2 s).
const shutdownAfterDrain = 12 * time.Second

// tomlString finds key = "value" in [table] of a TOML file (the flat shape of argus.toml).
func tomlString(doc, table, key string) (string, bool) {
	current := ""
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if m := tableLine.FindStringSubmatch(line); m != nil {
			current = strings.TrimSpace(m[1])
			continue
		}
		if m := keyLine.FindStringSubmatch(line); current == table && m != nil && m[1] == key {
			return m[2], true
		}
	}
	return "", false
}

var (
	tableLine = regexp.MustCompile(`^\[([^\[\]]+)\]`)
	keyLine   = regexp.MustCompile(`^([A-Za-z0-9_]+)\s*=\s*"([^"]*)"`)
)

// argusDuration reads a duration as Argus does: 500ms, 20s, 5m, 1h, 2d, or bare seconds.
func argusDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil {
			return time.Duration(n * 24 * float64(time.Hour)), nil
		}
	}
	return time.ParseDuration(v)
}

// pinned fails an image reference without a tag or digest, or tagged latest.
func pinned(r *report, what, image string) {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		r.fail("%s: image %q is not a valid reference: %v", what, image, err)
		return
	}
	if _, ok := ref.(reference.Digested); ok {
		return
	}
	t, ok := ref.(reference.Tagged)
	switch {
	case !ok:
		r.fail("%s: image %q has no tag; pin a version (name:1.2.3)", what, image)
	case t.Tag() == "latest":
		r.fail("%s: image %q is tagged latest; pin a version", what, image)
	}
}
