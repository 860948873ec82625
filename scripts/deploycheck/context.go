package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// checkContext checks that every source the Dockerfile copies from the build context (the
// repository root) exists and is sent to the builder: .dockerignore, read and matched as
// BuildKit does (patternmatcher), must not leave it out.
func checkContext(root, file string, list bool) int {
	r := &report{check: "build context of " + file}
	ignoreFile, patterns, err := readIgnore(root, file)
	if err != nil {
		r.fail("%v", err)
		return r.finish("")
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		r.fail("%s: %v", ignoreFile, err)
		return r.finish("")
	}
	included, size, err := contextFiles(root, pm)
	if err != nil {
		r.fail("%v", err)
		return r.finish("")
	}
	if list {
		for _, f := range included {
			fmt.Println(f)
		}
	}

	dt, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		r.fail("%v", err)
		return r.finish("")
	}
	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		r.fail("does not parse: %v", err)
		return r.finish("")
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		r.fail("does not parse: %v", err)
		return r.finish("")
	}
	sources := 0
	for _, st := range stages {
		for _, c := range st.Commands {
			var srcs []string
			var line int
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if c.From != "" {
					continue // from a stage, not the context
				}
				srcs, line = c.SourcePaths, c.Location()[0].Start.Line
			case *instructions.AddCommand:
				srcs, line = c.SourcePaths, c.Location()[0].Start.Line
			default:
				continue
			}
			for _, src := range srcs {
				if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
					continue // ADD of a URL
				}
				sources++
				checkSource(r, root, ignoreFile, included, line, src)
			}
		}
	}
	return r.finish(fmt.Sprintf("all %d COPY/ADD sources exist and pass %s; the context is %d files, %.1f MB",
		sources, ignoreFile, len(included), float64(size)/1e6))
}

// readIgnore returns the ignore file BuildKit uses for this Dockerfile: <Dockerfile>.dockerignore
// beside it if there is one, else .dockerignore at the context root.
func readIgnore(root, file string) (string, []string, error) {
	for _, name := range []string{file + ".dockerignore", ".dockerignore"} {
		f, err := os.Open(filepath.Join(root, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		defer f.Close()
		patterns, err := ignorefile.ReadAll(f)
		return name, patterns, err
	}
	return "(no .dockerignore)", nil, nil
}

// contextFiles walks the context as the builder does and returns the files it sends (slash
// paths relative to root, sorted) and their total size.
func contextFiles(root string, pm *patternmatcher.PatternMatcher) ([]string, int64, error) {
	var out []string
	var size int64
	parents := map[string]patternmatcher.MatchInfo{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		skip, info, err := pm.MatchesUsingParentResults(rel, parents[filepath.Dir(rel)])
		if err != nil {
			return err
		}
		if d.IsDir() {
			parents[rel] = info
			if skip && !mayReinclude(pm, rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if !skip {
			out = append(out, filepath.ToSlash(rel))
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	sort.Strings(out)
	return out, size, err
}

// mayReinclude: an excluded folder is still walked when an exception (!pattern) may let
// something under it back in (the rule of Docker's context walker).
func mayReinclude(pm *patternmatcher.PatternMatcher, dir string) bool {
	if !pm.Exclusions() {
		return false
	}
	prefix := filepath.ToSlash(dir) + "/"
	for _, p := range pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(filepath.ToSlash(p.String())+"/", prefix) {
			return true
		}
	}
	return false
}

// checkSource: one COPY/ADD source exists in the repository and reaches the builder.
func checkSource(r *report, root, ignoreFile string, included []string, line int, src string) {
	clean := path.Clean(strings.TrimPrefix(filepath.ToSlash(src), "/"))
	if strings.ContainsAny(clean, "*?[") {
		for _, f := range included {
			if ok, _ := path.Match(clean, f); ok {
				return
			}
		}
		r.fail("line %d: COPY %s matches no file of the build context (check the path and %s)", line, src, ignoreFile)
		return
	}
	st, err := os.Stat(filepath.Join(root, filepath.FromSlash(clean)))
	if err != nil {
		r.fail("line %d: COPY %s: no such file or folder in the repository", line, src)
		return
	}
	i := sort.SearchStrings(included, clean)
	if !st.IsDir() {
		if i == len(included) || included[i] != clean {
			r.fail("line %d: COPY %s: %s leaves it out of the build context; let it in (!%s)", line, src, ignoreFile, clean)
		}
		return
	}
	if clean == "." {
		return
	}
	if i == len(included) || !strings.HasPrefix(included[i], clean+"/") {
		r.fail("line %d: COPY %s: %s leaves every file of this folder out of the build context; let it in (!%s)", line, src, ignoreFile, clean)
	}
}
