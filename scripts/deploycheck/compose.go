package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
	return r.finish(fmt.Sprintf("loads as Docker Compose loads it; %d services, their depends_on name services; all %d files it names exist; images pinned",
		len(names), files))
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
