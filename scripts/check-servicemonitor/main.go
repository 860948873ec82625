// check-servicemonitor checks the ServiceMonitors of rendered Kubernetes manifests against
// the prometheus-operator's own API types, since the operator publishes no CRD YAML as a
// Go module: every ServiceMonitor, Service and Deployment is decoded strictly (an unknown or
// misspelt field fails, as the API server's strict field validation would), and then
//
//   - the ServiceMonitor's selector (with its namespaceSelector) matches a Service;
//   - each endpoint names a port of every Service it matches, and its interval and
//     scrapeTimeout parse as Prometheus durations; its HTTP/TLS settings pass the
//     operator's own Validate();
//   - each matched Service's selector matches the pod template of a Deployment in its
//     namespace, and its named targetPort is a container port of those pods;
//   - the job label Prometheus will give the targets (the Service's name, or the value of
//     its jobLabel label) is one of -jobs, and every job in -jobs is scraped.
//
// Usage: kustomize build DIR | check-servicemonitor -jobs argus-worker,argus-drift
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type objects struct {
	monitors    []monitoringv1.ServiceMonitor
	services    []corev1.Service
	deployments []appsv1.Deployment
}

func main() {
	jobsFlag := flag.String("jobs", "", "comma-separated job names the ServiceMonitors must produce (and the only ones allowed)")
	flag.Parse()
	objs, err := read(os.Stdin)
	if err != nil {
		fail([]string{err.Error()})
	}
	var jobs []string
	if *jobsFlag != "" {
		jobs = strings.Split(*jobsFlag, ",")
	}
	problems, report := check(objs, jobs)
	if len(problems) > 0 {
		fail(problems)
	}
	for _, line := range report {
		fmt.Println(line)
	}
}

func fail(problems []string) {
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "check-servicemonitor: %s\n", p)
	}
	os.Exit(1)
}

// read decodes the documents of a multi-document YAML stream; the kinds checked here are
// decoded strictly into their API types.
func read(r io.Reader) (objects, error) {
	var objs objects
	docs := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return objs, fmt.Errorf("reading the manifests: %w", err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return objs, fmt.Errorf("not a Kubernetes object: %w", err)
		}
		switch {
		case meta.Kind == "ServiceMonitor":
			if meta.APIVersion != "monitoring.coreos.com/v1" {
				return objs, fmt.Errorf("ServiceMonitor with apiVersion %q: the operator serves monitoring.coreos.com/v1", meta.APIVersion)
			}
			var sm monitoringv1.ServiceMonitor
			if err := yaml.UnmarshalStrict(doc, &sm); err != nil {
				return objs, fmt.Errorf("ServiceMonitor does not decode into monitoringv1.ServiceMonitor (fix the field named): %w", err)
			}
			objs.monitors = append(objs.monitors, sm)
		case meta.Kind == "Service" && meta.APIVersion == "v1":
			var svc corev1.Service
			if err := yaml.UnmarshalStrict(doc, &svc); err != nil {
				return objs, fmt.Errorf("Service does not decode into corev1.Service: %w", err)
			}
			objs.services = append(objs.services, svc)
		case meta.Kind == "Deployment" && meta.APIVersion == "apps/v1":
			var d appsv1.Deployment
			if err := yaml.UnmarshalStrict(doc, &d); err != nil {
				return objs, fmt.Errorf("Deployment does not decode into appsv1.Deployment: %w", err)
			}
			objs.deployments = append(objs.deployments, d)
		}
	}
}

func check(objs objects, jobs []string) (problems []string, report []string) {
	if len(objs.monitors) == 0 {
		return []string{"no ServiceMonitor in the manifests"}, nil
	}
	seen := map[string]bool{}
	for _, sm := range objs.monitors {
		name := fmt.Sprintf("ServiceMonitor %s/%s", sm.Namespace, sm.Name)
		problem := func(format string, args ...any) {
			problems = append(problems, name+": "+fmt.Sprintf(format, args...))
		}
		selector, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil {
			problem("bad selector: %v", err)
			continue
		}
		if selector.Empty() {
			problem("empty selector: it would scrape every Service of the namespace")
			continue
		}
		if len(sm.Spec.Endpoints) == 0 {
			problem("no endpoints")
		}
		for i, ep := range sm.Spec.Endpoints {
			if ep.Port == "" && ep.TargetPort == nil {
				problem("endpoint %d names no port", i)
			}
			for field, d := range map[string]monitoringv1.Duration{"interval": ep.Interval, "scrapeTimeout": ep.ScrapeTimeout} {
				if d == "" {
					continue
				}
				if _, err := model.ParseDuration(string(d)); err != nil {
					problem("endpoint %d: %s %q is not a Prometheus duration: %v", i, field, d, err)
				}
			}
			if err := ep.HTTPConfigWithProxyAndTLSFiles.Validate(); err != nil {
				problem("endpoint %d: %v", i, err)
			}
		}
		var matched []corev1.Service
		for _, svc := range objs.services {
			if selectsNamespace(sm, svc.Namespace) && selector.Matches(labels.Set(svc.Labels)) {
				matched = append(matched, svc)
			}
		}
		if len(matched) == 0 {
			problem("selector %q matches no Service (compare it with the Services' labels)", selector)
			continue
		}
		for _, svc := range matched {
			job := svc.Name
			if sm.Spec.JobLabel != "" {
				job = svc.Labels[sm.Spec.JobLabel]
				if job == "" {
					problem("jobLabel %q: Service %s has no such label", sm.Spec.JobLabel, svc.Name)
				}
			}
			if len(jobs) > 0 && !slices.Contains(jobs, job) {
				problem("Service %s gives the job %q; the rules and dashboards select %s (rename the Service or set jobLabel)", svc.Name, job, strings.Join(jobs, ", "))
			}
			seen[job] = true
			for i, ep := range sm.Spec.Endpoints {
				if ep.Port != "" {
					port := servicePort(svc, ep.Port)
					if port == nil {
						problem("endpoint %d: port %q is not a port name of Service %s (it has %s)", i, ep.Port, svc.Name, portNames(svc))
						continue
					}
					problems = append(problems, checkTargetPort(svc, *port, objs.deployments)...)
					report = append(report, fmt.Sprintf("%s -> Service %s port %s (%d) -> job %q", name, svc.Name, ep.Port, port.Port, job))
				}
			}
		}
	}
	for _, job := range jobs {
		if !seen[job] {
			problems = append(problems, fmt.Sprintf("no ServiceMonitor scrapes a Service that gives the job %q", job))
		}
	}
	sort.Strings(report)
	return problems, report
}

// selectsNamespace: the operator's rule; no namespaceSelector means the ServiceMonitor's own
// namespace.
func selectsNamespace(sm monitoringv1.ServiceMonitor, ns string) bool {
	sel := sm.Spec.NamespaceSelector
	switch {
	case sel.Any:
		return true
	case len(sel.MatchNames) > 0:
		return slices.Contains(sel.MatchNames, ns)
	default:
		return ns == sm.Namespace
	}
}

func servicePort(svc corev1.Service, name string) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == name {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

func portNames(svc corev1.Service) string {
	var names []string
	for _, p := range svc.Spec.Ports {
		names = append(names, fmt.Sprintf("%q", p.Name))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// checkTargetPort: the Service selects the pods of a Deployment in its namespace, and a
// named targetPort is a port of their containers (a number must be a containerPort).
func checkTargetPort(svc corev1.Service, port corev1.ServicePort, deployments []appsv1.Deployment) (problems []string) {
	if len(svc.Spec.Selector) == 0 {
		return []string{fmt.Sprintf("Service %s has no selector", svc.Name)}
	}
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	target := port.TargetPort
	if target.Type == intstr.Int && target.IntVal == 0 {
		target = intstr.FromInt32(port.Port)
	}
	found := false
	for _, d := range deployments {
		if d.Namespace != svc.Namespace || !selector.Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		found = true
		ok := false
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, cp := range c.Ports {
				if (target.Type == intstr.String && cp.Name == target.StrVal) ||
					(target.Type == intstr.Int && cp.ContainerPort == target.IntVal) {
					ok = true
				}
			}
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("Service %s port %s: targetPort %s is not a container port of Deployment %s", svc.Name, port.Name, target.String(), d.Name))
		}
	}
	if !found {
		problems = append(problems, fmt.Sprintf("Service %s selects no Deployment's pods (selector %q)", svc.Name, selector))
	}
	return problems
}
