// Command deploycheck checks the deployment files of the repository with the libraries the
// real tools are built on: the compose file as Docker Compose loads it (compose-go), the
// Dockerfile as BuildKit parses and checks it (`docker build --check`), and the build
// context as BuildKit filters it through .dockerignore (patternmatcher). scripts/check-compose
// runs it; each failure says what to fix.
//
//	deploycheck compose    -repo DIR -file docker-compose.yml
//	deploycheck dockerfile -repo DIR -file deploy/Dockerfile
//	deploycheck context    -repo DIR -file deploy/Dockerfile [-list]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// report collects failures; each one is a line that says what is wrong and what to do.
type report struct {
	check    string
	failures []string
}

func (r *report) fail(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// finish prints the failures (or one ok line) and returns the exit code.
func (r *report) finish(okDetail string) int {
	if len(r.failures) == 0 {
		fmt.Printf("ok   %s: %s\n", r.check, okDetail)
		return 0
	}
	for _, f := range r.failures {
		fmt.Fprintf(os.Stderr, "FAIL %s: %s\n", r.check, f)
	}
	return 1
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: deploycheck compose|dockerfile|context -repo DIR -file FILE")
		os.Exit(2)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	repo := fs.String("repo", ".", "repository root (the build context and the compose project directory)")
	file := fs.String("file", "", "the file to check, relative to -repo")
	list := fs.Bool("list", false, "context: print every file of the build context")
	_ = fs.Parse(os.Args[2:])
	root, err := filepath.Abs(*repo)
	if err != nil || *file == "" {
		fmt.Fprintln(os.Stderr, "deploycheck: give -repo DIR and -file FILE")
		os.Exit(2)
	}
	switch cmd {
	case "compose":
		os.Exit(checkCompose(root, *file))
	case "dockerfile":
		os.Exit(checkDockerfile(root, *file))
	case "context":
		os.Exit(checkContext(root, *file, *list))
	default:
		fmt.Fprintf(os.Stderr, "deploycheck: unknown command %q\n", cmd)
		os.Exit(2)
	}
}
