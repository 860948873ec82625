"""Checks of scripts/check-prometheus that need YAML and JSON: alert conventions, and that
every PromQL expression of the dashboards and KEDA triggers parses (promtool check rules).
Prints each problem with what to fix; exits 1 if there is any."""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

problems = []


def problem(msg):
    problems.append(msg)
    print(f"FAIL {msg}")


def anchors(markdown):
    """GitHub's anchors of the markdown headings: lower case, punctuation dropped, spaces to -."""
    out = set()
    for line in open(markdown, encoding="utf-8"):
        m = re.match(r"^#+\s+(.*?)\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).lower())
            out.add(text.replace(" ", "-"))
    return out


def check_alerts():
    rules = yaml.safe_load(open("deploy/prometheus/rules.yml"))
    tests = yaml.safe_load(open("deploy/prometheus/rules.test.yml"))
    runbook = anchors("docs/operations.md")
    fired, silent = set(), set()
    for case in tests.get("tests", []):
        for t in case.get("alert_rule_test", []):
            (fired if t.get("exp_alerts") else silent).add(t["alertname"])
    n = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                continue
            n += 1
            where = f"rules.yml alert {name}"
            if "for" not in rule:
                problem(f"{where}: no `for:` (say how long the condition must hold, 0m for at once)")
            if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                problem(f"{where}: labels.severity must be critical, warning or info")
            ann = rule.get("annotations", {})
            if not ann.get("summary"):
                problem(f"{where}: no annotations.summary")
            url = ann.get("runbook_url", "")
            anchor = url.rsplit("#", 1)[-1] if "#" in url else ""
            if "docs/operations.md#" not in url or anchor not in runbook:
                problem(f"{where}: runbook_url {url!r} must point at a heading of docs/operations.md (#{name.lower()})")
            if name not in fired:
                problem(f"{where}: no case in rules.test.yml where it fires (exp_alerts)")
            if name not in silent:
                problem(f"{where}: no case in rules.test.yml where it stays silent (exp_alerts: [])")
    print(f"ok   {n} alerts: for, severity, summary, runbook section, firing and silent test cases")


VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def concrete(expr):
    """The expression with Grafana's variables replaced: intervals by 5m, others by .* (they
    are used in =~ matchers)."""
    def sub(m):
        name = m.group(1) or m.group(2)
        return "5m" if name in ("__rate_interval", "__interval", "__range") else ".*"
    return VARIABLE.sub(sub, expr)


# Grafana's own annotation source ("Annotations & Alerts"), which dashboards exported from
# Grafana carry; not a datasource of the provisioning.
GRAFANA_BUILTIN = {"-- Grafana --", "grafana"}


def datasource_refs(node, where):
    """Every `datasource` reference in a dashboard (panels, targets, variables, annotations,
    nested rows) as (where, value)."""
    if isinstance(node, dict):
        here = node.get("title") or node.get("name") or node.get("refId")
        at = f"{where} > {here}" if here else where
        for key, value in node.items():
            if key == "datasource":
                yield at, value
            else:
                yield from datasource_refs(value, at)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item, where)


def check_datasources(path, board, sources):
    """Every datasource reference is an object naming a provisioned uid (or Grafana's
    built-in annotations), with the type that uid has: a wrong uid in a variable leaves it
    without values, and every panel filtering on it without data."""
    for at, ref in datasource_refs(board, path):
        if not isinstance(ref, dict):
            problem(f"{at}: datasource {ref!r} must be an object {{type, uid}} naming a provisioned uid")
            continue
        uid = ref.get("uid")
        if uid in GRAFANA_BUILTIN:
            continue
        if uid not in sources:
            problem(f"{at}: datasource uid {uid!r} is not provisioned (deploy/grafana/provisioning/datasources: {sorted(sources)})")
        elif ref.get("type") not in (None, sources[uid]):
            problem(f"{at}: datasource {uid!r} has type {sources[uid]!r}, not {ref.get('type')!r}")


def dashboard_exprs():
    sources = {}
    for f in sorted(glob.glob("deploy/grafana/provisioning/datasources/*.yml")):
        for d in yaml.safe_load(open(f)).get("datasources", []):
            sources[d["uid"]] = d["type"]
    uids = set(sources)
    out = []
    files = sorted(glob.glob("deploy/grafana/dashboards/*.json"))
    if not files:
        problem("deploy/grafana/dashboards: no dashboards")
    for path in files:
        try:
            board = json.load(open(path))
        except json.JSONDecodeError as e:
            problem(f"{path}: not JSON: {e}")
            continue
        for key in ("uid", "title", "panels", "schemaVersion"):
            if key not in board:
                problem(f"{path}: no {key}")
        check_datasources(path, board, sources)
        for var in board.get("templating", {}).get("list", []):
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q or "")
            if var.get("type") == "query":
                if not m:
                    problem(f"{path}: variable {var.get('name')}: expected label_values(selector, label), got {q!r}")
                    continue
                out.append((f"{path} variable {var['name']}", m.group(1)))
        for panel in board.get("panels", []):
            if panel.get("type") == "row":
                continue
            title = panel.get("title", "?")
            if "datasource" not in panel:
                problem(f"{path}: panel {title!r}: no datasource (one of {sorted(uids)}, provisioned)")
            if not panel.get("targets"):
                problem(f"{path}: panel {title!r} has no targets")
            if "gridPos" not in panel:
                problem(f"{path}: panel {title!r} has no gridPos")
            for t in panel.get("targets", []):
                if "datasource" not in t:
                    problem(f"{path}: panel {title!r} target {t.get('refId')}: no datasource")
                out.append((f"{path} panel {title!r} target {t.get('refId')}", t.get("expr", "")))
    return out


def keda_exprs():
    out = []
    for path in sorted(glob.glob("deploy/k8s/**/*.yaml", recursive=True)):
        for doc in yaml.safe_load_all(open(path)):
            if not isinstance(doc, dict) or doc.get("kind") != "ScaledObject":
                continue
            for trig in doc.get("spec", {}).get("triggers", []):
                if trig.get("type") == "prometheus":
                    out.append((f"{path} ScaledObject {doc['metadata']['name']} trigger {trig.get('name')}",
                                trig["metadata"]["query"]))
    return out


def check_exprs(exprs):
    """Each expression as a recording rule, checked by every promtool of PROMTOOLS (Debian's
    and the compose stack's version)."""
    for tool in os.environ.get("PROMTOOLS", "promtool").split():
        check_exprs_with(tool, exprs)


def check_exprs_with(promtool, exprs):
    """Each expression as a recording rule; promtool names the failing one by its index."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "exprs.yml")
        rules = [{"record": f"check:expr_{i}", "expr": concrete(e)} for i, (_, e) in enumerate(exprs)]
        yaml.safe_dump({"groups": [{"name": "expressions", "rules": rules}]}, open(path, "w"))
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        if r.returncode == 0:
            print(f"ok   {len(exprs)} dashboard and KEDA expressions parse ({promtool} check rules)")
            return
        # One at a time, to name the culprits.
        for where, e in exprs:
            yaml.safe_dump({"groups": [{"name": "one", "rules": [{"record": "check:expr", "expr": concrete(e)}]}]}, open(path, "w"))
            one = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
            if one.returncode != 0:
                detail = (one.stdout + one.stderr).strip().splitlines()[-1]
                problem(f"{where}: PromQL does not parse ({promtool}): {e!r}: {detail}")


check_alerts()
check_exprs(dashboard_exprs() + keda_exprs())
if problems:
    print(f"check-prometheus: {len(problems)} problem(s)", file=sys.stderr)
    sys.exit(1)
