"""Checks the rendered Kubernetes manifests of deploy/k8s (run by scripts/check-k8s).

  (b) every built-in object against the Kubernetes JSON schemas of kubernetes-validate,
      strict (an unknown field fails), for each Kubernetes version asked for;
  (c) every KEDA object against the openAPIV3Schema of KEDA's own CRD, taken from the
      github.com/kedacore/keda/v2 module: made strict as the API server's strict field
      validation is (unknown fields fail unless x-kubernetes-preserve-unknown-fields), with
      x-kubernetes-int-or-string, -list-type, -list-map-keys, -embedded-resource and the
      CEL rules of x-kubernetes-validations honoured, metadata against ObjectMeta; and each
      trigger's metadata (a string map the CRD cannot check) against the parameters its
      scaler parses in that module's source (names, required ones, enums, value types);
  (e) consistency between the manifests and what argus itself reads (see check_consistency).
(d), the ServiceMonitors, is scripts/check-servicemonitor (Go: the operator's API types).

Usage: check-k8s.py --argus BIN --keda DIR --k8s-versions 1.31.0,1.37.0 NAME=RENDERED.yaml...
A NAME starting with "overlays/" is a deployable build: placeholders are not allowed there.
"""

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import celpy
import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

# The endpoints argus serves on its metrics address (crates/argus/src/telemetry.rs).
ENDPOINTS = {"/metrics", "/healthz", "/readyz"}
# Fixed bounds of the worker's shutdown after the drain (crates/worker/src/run.rs: the
# producer flush waits 10 s; docs/workers.md: a revocation waits 2 s for handed-over outputs).
SHUTDOWN_AFTER_DRAIN_S = 10 + 2
# The Prometheus jobs the rules, dashboards and the ScaledObject's query select.
WORKER_JOB = "argus-worker"
PARTITIONS_ANNOTATION = "argus/input-partitions"
# Trigger type -> the KEDA sources whose `keda:"..."` tags define its metadata: the scaler's
# own, then shared parameter structs it embeds (their names are allowed, never required:
# KEDA parses an embedded optional struct only when it is used).
SCALER_SOURCES = {
    "kafka": ["pkg/scalers/kafka_scaler.go"],
    "prometheus": ["pkg/scalers/prometheus_scaler.go", "pkg/scalers/authentication/authentication_types.go"],
    "cpu": ["pkg/scalers/cpu_memory_scaler.go"],
    "memory": ["pkg/scalers/cpu_memory_scaler.go"],
}
CRDS = {
    ("keda.sh", "ScaledObject"): "config/crd/bases/keda.sh_scaledobjects.yaml",
    ("keda.sh", "TriggerAuthentication"): "config/crd/bases/keda.sh_triggerauthentications.yaml",
}
BUILTIN_SKIP_GROUPS = {"keda.sh", "monitoring.coreos.com"}  # checked by (c) and (d)


class Report:
    def __init__(self):
        self.failures = 0

    def ok(self, build, what):
        print(f"  ok    [{build}] {what}")

    def fail(self, build, what, fix):
        self.failures += 1
        print(f"  FAIL  [{build}] {what}\n        fix: {fix}")


# ---------------------------------------------------------------------------------------
# (b) built-in objects


def check_builtin(report, build, objs, versions):
    for obj in objs:
        group = obj.get("apiVersion", "").rpartition("/")[0]
        if group in BUILTIN_SKIP_GROUPS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path) or "(object)"
                report.fail(build, f"{kn(obj)} vs Kubernetes {version} schema: {path}: {e.message}",
                            "use the field as the Kubernetes API defines it (kubectl explain)")
                break
            except kv_utils.SchemaNotFoundError as e:
                report.fail(build, f"{kn(obj)}: {e.message}", "use an apiVersion that Kubernetes serves")
                break
        else:
            report.ok(build, f"{kn(obj)} valid (strict) on Kubernetes {', '.join(versions)}")


def kn(obj):
    ns = obj.get("metadata", {}).get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{obj.get('metadata', {}).get('name')}"


# ---------------------------------------------------------------------------------------
# (c) KEDA objects against KEDA's CRDs


def crd_validator(crd_file, version, meta_validator):
    """A JSON Schema validator for one version of a CRD, as strict as the API server."""
    with open(crd_file) as f:
        crd = yaml.safe_load(f)
    served = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
    if not served:
        return None
    schema = strict_schema(served[0]["schema"]["openAPIV3Schema"], root=True)

    def list_map_keys(validator, keys, instance, schema):
        if not validator.is_type(instance, "array"):
            return
        seen = set()
        for item in instance:
            key = tuple(repr(item.get(k)) if isinstance(item, dict) else None for k in keys)
            if key in seen:
                yield jsonschema.ValidationError(f"duplicate entry for list-map keys {keys}: {item!r}")
            seen.add(key)

    def cel_rules(validator, rules, instance, schema):
        for rule in rules:
            text = rule["rule"]
            if "oldSelf" in text:
                continue  # transition rules apply to updates only
            try:
                env = celpy.Environment()
                program = env.program(env.compile(text))
                result = program.evaluate({"self": celpy.json_to_cel(instance)})
            except Exception as e:  # noqa: BLE001 - any failure to evaluate is reported
                yield jsonschema.ValidationError(f"cannot evaluate the CRD's CEL rule {text!r}: {e}")
                continue
            if not isinstance(result, celpy.celtypes.BoolType) or not bool(result):
                yield jsonschema.ValidationError(f"{rule.get('message', 'CEL rule failed')} (rule: {text})")

    def object_meta(validator, _value, instance, schema):
        for error in meta_validator.iter_errors(instance):
            yield error

    def embedded(validator, value, instance, schema):
        if value and validator.is_type(instance, "object"):
            for key in ("apiVersion", "kind"):
                if key not in instance:
                    yield jsonschema.ValidationError(f"embedded resource without {key}")

    def int32(checker, instance):
        return not isinstance(instance, int) or -(2**31) <= instance < 2**31

    def int64(checker, instance):
        return not isinstance(instance, int) or -(2**63) <= instance < 2**63

    formats = jsonschema.FormatChecker()
    formats.checks("int32")(lambda v: int32(None, v))
    formats.checks("int64")(lambda v: int64(None, v))
    validator_class = jsonschema.validators.extend(
        jsonschema.Draft4Validator,
        {
            "x-kubernetes-list-map-keys": list_map_keys,
            "x-argus-cel": cel_rules,
            "x-argus-object-meta": object_meta,
            "x-kubernetes-embedded-resource": embedded,
        },
    )
    return validator_class(schema, format_checker=formats)


def strict_schema(node, root=False):
    """The structural schema as JSON Schema: objects refuse unknown fields (the API server
    prunes them, and strict field validation, kubectl's default, rejects them) unless they
    preserve unknown fields; int-or-string and nullable become JSON Schema types; a set is
    uniqueItems. Kubernetes extensions the validator implements are kept."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: strict_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [strict_schema(v) for v in value]
        elif key in ("description", "default", "example", "externalDocs", "x-kubernetes-map-type",
                     "x-kubernetes-list-type", "nullable", "x-kubernetes-int-or-string",
                     "x-kubernetes-preserve-unknown-fields"):
            continue
        elif key == "x-kubernetes-validations":
            out["x-argus-cel-off"] = value
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if node.get("type") == "object" and not preserve and "additionalProperties" not in node:
        out["additionalProperties"] = False
        if node.get("x-kubernetes-embedded-resource"):
            for key in ("apiVersion", "kind", "metadata"):
                out.setdefault("properties", {}).setdefault(key, {})
    if root:
        # The CRD says only `type: object` for metadata; the API server checks ObjectMeta.
        out.setdefault("properties", {})["metadata"] = {"x-argus-object-meta": True}
    return out


def with_cel(schema):
    """The schema with its x-kubernetes-validations (kept aside as x-argus-cel-off) on."""
    if isinstance(schema, dict):
        return {("x-argus-cel" if k == "x-argus-cel-off" else k): with_cel(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [with_cel(v) for v in schema]
    return schema


# The HPA KEDA creates from advanced.horizontalPodAutoscalerConfig.behavior: its API
# validation (not in any schema: the CRD and the autoscaling/v2 OpenAPI both say "string")
# accepts these policy types and selectPolicy values (k8s.io/api/autoscaling/v2:
# HPAScalingPolicyType, ScalingPolicySelect), periodSeconds in 1..1800 and a
# stabilization window of at most one hour.
HPA_POLICY_TYPES = {"Pods", "Percent"}
HPA_SELECT_POLICIES = {"Max", "Min", "Disabled"}


def hpa_behavior_errors(obj):
    errors = []
    behavior = (obj["spec"].get("advanced", {}) or {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {}) or {}
    for direction, rules in behavior.items():
        path = f"spec/advanced/horizontalPodAutoscalerConfig/behavior/{direction}"
        window = rules.get("stabilizationWindowSeconds")
        if window is not None and not 0 <= window <= 3600:
            errors.append(jsonschema.ValidationError(f"{path}: stabilizationWindowSeconds {window} outside 0..3600 (the HPA refuses it)"))
        if rules.get("selectPolicy", "Max") not in HPA_SELECT_POLICIES:
            errors.append(jsonschema.ValidationError(f"{path}: selectPolicy {rules['selectPolicy']!r} not one of {sorted(HPA_SELECT_POLICIES)}"))
        for i, policy in enumerate(rules.get("policies", []) or []):
            if policy.get("type") not in HPA_POLICY_TYPES:
                errors.append(jsonschema.ValidationError(f"{path}/policies/{i}: type {policy.get('type')!r} not one of {sorted(HPA_POLICY_TYPES)} (the HPA refuses it)"))
            if not policy.get("value", 0) > 0:
                errors.append(jsonschema.ValidationError(f"{path}/policies/{i}: value must be > 0"))
            if not 0 < policy.get("periodSeconds", 0) <= 1800:
                errors.append(jsonschema.ValidationError(f"{path}/policies/{i}: periodSeconds must be in 1..1800"))
    return errors


def object_meta_validator(version):
    base = f"kubernetes-json-schema/v{version}-local-strict/_definitions.json"
    defs = kv_utils.schema_contents(base, version)
    registry = Resource.from_contents(defs) @ Registry()
    ref = defs["$id"] + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=registry)


def check_keda(report, build, objs, keda_dir, meta_validator):
    for obj in objs:
        group, _, version = obj.get("apiVersion", "").rpartition("/")
        if group != "keda.sh":
            continue
        crd = CRDS.get((group, obj.get("kind")))
        if crd is None:
            report.fail(build, f"{kn(obj)}: no KEDA CRD known to this check", f"add its CRD file to CRDS in {__file__}")
            continue
        validator = crd_validator(os.path.join(keda_dir, crd), version, meta_validator)
        if validator is None:
            report.fail(build, f"{kn(obj)}: KEDA's CRD serves no version {version}", "use apiVersion keda.sh/v1alpha1")
            continue
        # As the API server: the schema first, the CEL rules only on an object that passes it.
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
        if not errors:
            errors = sorted(validator.evolve(schema=with_cel(validator.schema)).iter_errors(obj), key=lambda e: list(e.path))
        if obj.get("kind") == "ScaledObject":
            errors += hpa_behavior_errors(obj)
        for e in errors:
            path = "/".join(str(p) for p in e.absolute_path) or "(object)"
            report.fail(build, f"{kn(obj)} vs KEDA CRD {os.path.basename(crd)}: {path}: {e.message}",
                        "use the field as KEDA's CRD defines it (the schema is in the module, config/crd/bases)")
        if not errors:
            report.ok(build, f"{kn(obj)} valid (strict, with CEL rules) against KEDA's CRD")
        if obj.get("kind") == "ScaledObject":
            for i, trigger in enumerate(obj.get("spec", {}).get("triggers", [])):
                check_trigger_metadata(report, build, objs, obj, i, trigger, keda_dir)


def scaler_params(keda_dir, trigger_type):
    """The parameters KEDA's scaler for `trigger_type` parses: the `keda:"..."` struct tags
    of its source (pkg/scalers/scalersconfig/typed_config.go reads the same tags)."""
    params = []
    tag = re.compile(r'^\s*(\w+)\s+([\w.\[\]*]+)\s+`keda:"([^"]*)"`', re.M)
    for n, rel in enumerate(SCALER_SOURCES[trigger_type]):
        with open(os.path.join(keda_dir, rel)) as f:
            source = f.read()
        for field, gotype, spec in tag.findall(source):
            p = {"field": field, "type": gotype, "optional": False, "default": None, "enum": None,
                 "deprecated": None, "names": [], "order": [], "embedded": n > 0}
            for part in spec.split(","):
                key, _, value = part.strip().partition("=")
                if key == "name":
                    p["names"] = [n.strip() for n in value.split(";")]
                elif key == "order":
                    p["order"] = [o.strip() for o in value.split(";")]
                elif key == "optional":
                    p["optional"] = True
                elif key == "default":
                    p["default"] = value
                elif key == "enum":
                    p["enum"] = value.split(";")
                elif key == "deprecated":
                    p["deprecated"] = value or "deprecated"
            if p["names"]:
                params.append(p)
    return params


GO_BOOL = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}


def check_trigger_metadata(report, build, objs, obj, index, trigger, keda_dir):
    ttype = trigger.get("type")
    where = f"{kn(obj)} trigger {index} ({ttype})"
    if ttype not in SCALER_SOURCES:
        report.fail(build, f"{where}: no scaler source known to this check", f"add the scaler's source to SCALER_SOURCES in {__file__}")
        return
    params = scaler_params(keda_dir, ttype)
    metadata = trigger.get("metadata", {}) or {}
    has_auth = "authenticationRef" in trigger
    problems = []
    for key, value in metadata.items():
        base, from_env = (key[: -len("FromEnv")], True) if key.endswith("FromEnv") else (key, False)
        match = [p for p in params if base in p["names"]]
        allowed = [p for p in match if ("resolvedEnv" in p["order"] if from_env else "triggerMetadata" in p["order"])]
        if not allowed:
            hint = "only from a TriggerAuthentication" if match else "not a parameter of this scaler"
            problems.append(f"metadata {key!r}: {hint}")
            continue
        p = allowed[0]
        if p["deprecated"]:
            problems.append(f"metadata {key!r}: KEDA refuses it: {p['deprecated']}")
        if from_env:
            continue
        if p["enum"] and value not in p["enum"]:
            problems.append(f"metadata {key!r}: {value!r} is not one of {p['enum']}")
        if p["type"] == "bool" and value not in GO_BOOL:
            problems.append(f"metadata {key!r}: {value!r} is not a Go bool")
        elif p["type"] in ("int", "int32", "int64"):
            if not re.fullmatch(r"[+-]?\d+", value.strip()):
                problems.append(f"metadata {key!r}: {value!r} is not an integer")
        elif p["type"] in ("float32", "float64"):
            try:
                float(value)
            except ValueError:
                problems.append(f"metadata {key!r}: {value!r} is not a number")
    for p in params:
        if p["optional"] or p["default"] is not None or p["deprecated"] or p["embedded"]:
            continue
        if "authParams" in p["order"] and has_auth:
            continue
        given = any(n in metadata or (n + "FromEnv") in metadata for n in p["names"])
        if not given and ("triggerMetadata" in p["order"] or "resolvedEnv" in p["order"]):
            problems.append(f"metadata {p['names'][0]!r} is required by the scaler")
    # A TriggerAuthentication's parameters are the scaler's authParams.
    ref = trigger.get("authenticationRef")
    if ref:
        kind = ref.get("kind", "TriggerAuthentication")
        auth = find(objs, kind, ref["name"], obj["metadata"].get("namespace") if kind == "TriggerAuthentication" else None)
        if auth is None:
            problems.append(f"authenticationRef names {kind} {ref['name']}, which is not in the manifests")
        else:
            for target in (auth.get("spec", {}) or {}).get("secretTargetRef", []) or []:
                if not any(target["parameter"] in p["names"] and "authParams" in p["order"] for p in params):
                    problems.append(f"{kind} {ref['name']}: parameter {target['parameter']!r} is not an auth parameter of this scaler")
    for problem in problems:
        report.fail(build, f"{where}: {problem}", f"see KEDA's {' and '.join(SCALER_SOURCES[ttype])} (keda:\"...\" tags)")
    if not problems:
        report.ok(build, f"{where}: metadata keys, required parameters and values match KEDA's scaler source")


# ---------------------------------------------------------------------------------------
# (e) consistency with what argus reads


def parse_duration_s(text):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text))
    if not m:
        raise ValueError(f"unreadable duration {text!r}")
    n, unit = float(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def known_env(argus):
    out = subprocess.run([argus, "config", "env"], capture_output=True, text=True, check=True).stdout
    names = set(re.findall(r"`(ARGUS_[A-Z0-9_]+)`", out))
    if "ARGUS_KAFKA__OPTIONS__" not in out:
        raise SystemExit("argus config env no longer lists ARGUS_KAFKA__OPTIONS__<PROPERTY>; update check-k8s.py")
    return names


def env_is_known(name, known):
    if name in known:
        return True
    prefix = "ARGUS_KAFKA__OPTIONS__"
    return name.startswith(prefix) and len(name) > len(prefix)


def by_kind(objs, kind):
    return [o for o in objs if o.get("kind") == kind]


def find(objs, kind, name, namespace=None):
    for o in objs:
        meta = o.get("metadata", {})
        if o.get("kind") == kind and meta.get("name") == name and (namespace is None or meta.get("namespace") == namespace):
            return o
    return None


def unwired(objs, kind, name, namespace):
    """A generated object (name-hash suffix) meant for `name` that the reference does not
    reach: kustomize renames references only within one namespace."""
    return [kn(o) for o in by_kind(objs, kind)
            if re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", o["metadata"].get("name", ""))]


def role_of(container):
    args = container.get("args") or []
    if args[:1] == ["work"]:
        return "worker"
    if args[:2] == ["drift", "watch"]:
        return "drift"
    return None


def container_env(objs, deployment, container):
    """The environment the container gets: {name: value or None (unknown, from a Secret
    not in the manifests)}, with its source, in Kubernetes' order (envFrom, then env)."""
    env = {}
    namespace = deployment["metadata"].get("namespace")
    pod_name = deployment["metadata"]["name"] + "-5d8f7c9b4-x2x7q"
    for source in container.get("envFrom", []) or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if not ref:
                continue
            o = find(objs, kind, ref["name"], namespace)
            if o is None:
                stray = unwired(objs, kind, ref["name"], namespace)
                if stray:
                    env[f"<{kind} {ref['name']}>"] = (None, f"{kind} {ref['name']} is referenced, but the build generates {', '.join(stray)} under another name or namespace")
                elif not ref.get("optional"):
                    env[f"<{kind} {ref['name']}>"] = (None, f"missing required {kind} {ref['name']}")
                continue
            data = dict(o.get("data", {}) or {})
            if kind == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                data.update(o.get("stringData", {}) or {})
            for k, v in data.items():
                env[prefix + k] = (v, f"{kind} {ref['name']}")
    for e in container.get("env", []) or []:
        if "value" in e or "valueFrom" not in e:
            env[e["name"]] = (e.get("value", ""), "env")
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            env[e["name"]] = (pod_name if vf["fieldRef"]["fieldPath"] == "metadata.name" else "x", "fieldRef")
        elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
            kind, ref = ("ConfigMap", vf["configMapKeyRef"]) if "configMapKeyRef" in vf else ("Secret", vf["secretKeyRef"])
            o = find(objs, kind, ref["name"], namespace)
            value = None
            if o is not None:
                value = (o.get("data", {}) or {}).get(ref["key"])
                if kind == "Secret" and value is not None:
                    value = base64.b64decode(value).decode()
            env[e["name"]] = (value, f"{kind} {ref['name']}")
        else:
            env[e["name"]] = (None, "resourceFieldRef")
    return env


def effective_config(argus, toml_text, env):
    """`argus config` (every table) as argus would see it in the pod: the mounted file and
    the container's ARGUS_* environment, nothing from this machine's environment."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(toml_text)
        path = f.name
    try:
        clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        clean.update({k: v for k, (v, _) in env.items() if k.startswith("ARGUS_") and v is not None})
        clean["ARGUS_CONFIG"] = path
        run = subprocess.run([argus, "config"], capture_output=True, text=True, env=clean)
        if run.returncode != 0:
            return None, (run.stderr or run.stdout).strip()
        return tomllib.loads(run.stdout), None
    finally:
        os.unlink(path)


def http_probes(container):
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(kind)
        if probe and "httpGet" in probe:
            yield kind, probe["httpGet"]


def port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []) or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


def check_consistency(report, build, objs, argus, known, deployable):
    roles = {}
    for d in by_kind(objs, "Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            role = role_of(c)
            if role:
                roles[role] = (d, c)
    for role in ("worker", "drift"):
        if role not in roles:
            report.fail(build, f"no Deployment runs the {role} (container args {'work' if role == 'worker' else 'drift watch'})",
                        "keep both Deployments in the base")
    configs = {}
    for role, (d, c) in roles.items():
        where = f"Deployment {d['metadata']['name']} container {c['name']}"
        env = container_env(objs, d, c)
        # Every ARGUS_* variable is one argus knows (it refuses the others, exit 64).
        unknown = [f"{n} (from {src})" for n, (_, src) in env.items() if n.startswith("ARGUS_") and not env_is_known(n, known)]
        missing = [src for n, (_, src) in env.items() if n.startswith("<")]
        if unknown:
            report.fail(build, f"{where}: ARGUS_* variables argus does not know: {', '.join(unknown)}",
                        "use a name `argus config env` lists (docs/environment.md)")
        elif missing:
            report.fail(build, f"{where}: {', '.join(missing)}", "generate it in the kustomization or mark it optional")
        else:
            names = sorted(n for n in env if n.startswith("ARGUS_"))
            report.ok(build, f"{where}: every ARGUS_* variable is one `argus config env` lists ({', '.join(names)})")
        # The config file: mounted where ARGUS_CONFIG points, from a rendered ConfigMap.
        config_path = env.get("ARGUS_CONFIG", (None, ""))[0]
        mounts = {m["mountPath"].rstrip("/"): m["name"] for m in c.get("volumeMounts", []) or []}
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"].get("volumes", []) or []}
        toml_text = None
        if config_path:
            directory, _, filename = config_path.rpartition("/")
            volume = volumes.get(mounts.get(directory, ""), {})
            cm = find(objs, "ConfigMap", volume.get("configMap", {}).get("name"))
            toml_text = (cm or {}).get("data", {}).get(filename)
        if toml_text is None:
            report.fail(build, f"{where}: ARGUS_CONFIG={config_path!r} is not a file of a ConfigMap mounted in the container",
                        "mount the argus-config ConfigMap at the directory ARGUS_CONFIG names")
            continue
        config, error = effective_config(argus, toml_text, env)
        if error:
            report.fail(build, f"{where}: argus refuses the configuration the pod would get: {error}",
                        "fix the argus.toml or the ARGUS_* variable named")
            continue
        report.ok(build, f"{where}: `argus config` accepts the mounted argus.toml with the container's environment")
        configs[role] = config
        # Probes and the container port are where the role's metrics_addr listens.
        addr = config[role]["metrics_addr"]
        host, _, port = addr.rpartition(":")
        if host.strip("[]") not in ("0.0.0.0", "::"):
            report.fail(build, f"{where}: {role}.metrics_addr {addr} is not reachable from outside the pod",
                        f"set {role}.metrics_addr = \"0.0.0.0:{port}\" in argus.toml")
        bad = []
        for kind, get in http_probes(c):
            n = port_number(c, get.get("port"))
            if n != int(port):
                bad.append(f"{kind} port {get.get('port')!r} ({n})")
            if get.get("path") not in ENDPOINTS:
                bad.append(f"{kind} path {get.get('path')!r}")
        if role == "worker":
            ready = (c.get("readinessProbe") or {}).get("httpGet", {}).get("path")
            if ready != "/readyz":
                bad.append(f"readinessProbe path {ready!r} (the worker's readiness is /readyz)")
            live = (c.get("livenessProbe") or {}).get("httpGet", {}).get("path")
            if live != "/healthz":
                bad.append(f"livenessProbe path {live!r} (the worker's liveness is /healthz)")
        if bad:
            report.fail(build, f"{where}: probes do not match {role}.metrics_addr {addr}: {'; '.join(bad)}",
                        f"probe /healthz or /readyz on the container port {port}")
        else:
            report.ok(build, f"{where}: probes hit {', '.join(sorted({g['path'] for _, g in http_probes(c)}))} on port {port} = {role}.metrics_addr")
        if deployable and c.get("image", "").split(":")[0] == "argus":
            report.fail(build, f"{where}: image {c.get('image')!r} is the base's placeholder",
                        "set images: (newName, newTag) in the overlay")
    if "worker" not in configs:
        return
    d, c = roles["worker"]
    w, kafka = configs["worker"]["worker"], configs["worker"]["kafka"]
    # Grace period: the drain, then the fixed flush and revocation waits.
    drain = parse_duration_s(w["drain_timeout"])
    grace = d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    if grace <= drain + SHUTDOWN_AFTER_DRAIN_S:
        report.fail(build, f"terminationGracePeriodSeconds {grace} <= drain_timeout {w['drain_timeout']} + {SHUTDOWN_AFTER_DRAIN_S} s (flush, revocation)",
                    f"raise terminationGracePeriodSeconds above {drain + SHUTDOWN_AFTER_DRAIN_S:.0f} or lower worker.drain_timeout")
    else:
        report.ok(build, f"terminationGracePeriodSeconds {grace} > drain_timeout {w['drain_timeout']} + {SHUTDOWN_AFTER_DRAIN_S} s")
    check_scaledobjects(report, build, objs, d, c, w, kafka, deployable, container_env(objs, d, c), known)


def check_scaledobjects(report, build, objs, d, c, w, kafka, deployable, env, known):
    sos = by_kind(objs, "ScaledObject")
    if len(sos) != 1:
        report.fail(build, f"{len(sos)} ScaledObjects", "keep exactly one, for the worker Deployment")
        return
    so = sos[0]
    spec = so["spec"]
    name = d["metadata"]["name"]
    ref = spec.get("scaleTargetRef", {})
    problems = []
    if ref.get("name") != name or ref.get("kind", "Deployment") != "Deployment" or ref.get("apiVersion", "apps/v1") != "apps/v1":
        problems.append((f"scaleTargetRef {ref} does not name the worker Deployment {name}", f"scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}"))
    if ref.get("envSourceContainerName", c["name"]) != c["name"]:
        problems.append((f"envSourceContainerName {ref.get('envSourceContainerName')!r} is not the worker container {c['name']!r}", f"set it to {c['name']}"))
    partitions = (d["metadata"].get("annotations") or {}).get(PARTITIONS_ANNOTATION)
    if partitions is None or not str(partitions).isdigit():
        problems.append((f"the worker Deployment has no integer {PARTITIONS_ANNOTATION} annotation", "state the input topic's partition count there"))
    elif spec.get("maxReplicaCount") != int(partitions):
        problems.append((f"maxReplicaCount {spec.get('maxReplicaCount')!r} != the input's partitions ({PARTITIONS_ANNOTATION} = {partitions})",
                         "a worker beyond the partition count idles: make them equal (both when the topic grows)"))
    namespace = so["metadata"].get("namespace", "default")
    for t in spec.get("triggers", []):
        md = t.get("metadata", {}) or {}
        if t.get("type") == "kafka":
            if md.get("consumerGroup") != w["group"]:
                problems.append((f"kafka trigger consumerGroup {md.get('consumerGroup')!r} != worker.group {w['group']!r}", "use the workers' group"))
            if md.get("topic") not in w["inputs"]:
                problems.append((f"kafka trigger topic {md.get('topic')!r} is not one of worker.inputs {w['inputs']}", "use the workers' input topic"))
            if md.get("offsetResetPolicy", "latest") != kafka["offset_reset"]:
                problems.append((f"kafka trigger offsetResetPolicy {md.get('offsetResetPolicy', 'latest')!r} != kafka.offset_reset {kafka['offset_reset']!r}",
                                 "count lag the way the workers start"))
            source = md.get("bootstrapServersFromEnv")
            brokers = env.get(source, (None, ""))[0] if source else md.get("bootstrapServers")
            if brokers != kafka["brokers"]:
                problems.append((f"kafka trigger brokers {brokers!r} (bootstrapServers{'FromEnv ' + source if source else ''}) != the workers' {kafka['brokers']!r}",
                                 "read ARGUS_KAFKA__BROKERS with bootstrapServersFromEnv"))
            auth = find(objs, "TriggerAuthentication", (t.get("authenticationRef") or {}).get("name"), so["metadata"].get("namespace"))
            if auth is not None:
                secrets = {s_["secretRef"]["name"] for s_ in c.get("envFrom", []) or [] if "secretRef" in s_}
                for target in auth["spec"].get("secretTargetRef", []) or []:
                    if target["name"] not in secrets:
                        problems.append((f"TriggerAuthentication {auth['metadata']['name']} reads Secret {target['name']}, not the workers' ({', '.join(sorted(secrets)) or 'none'})",
                                         "give KEDA the Secret the workers read, so both use one set of credentials"))
                    elif not env_is_known(target["key"], known):
                        problems.append((f"TriggerAuthentication {auth['metadata']['name']} reads key {target['key']}, which is no ARGUS_* variable the workers read",
                                         "use the ARGUS_KAFKA__OPTIONS__* key that holds the same value for the workers"))
            threshold = int(md.get("lagThreshold", "10"))
            if threshold <= w["max_in_flight"]:
                problems.append((f"lagThreshold {threshold} <= worker.max_in_flight {w['max_in_flight']}: inputs merely in flight would scale",
                                 "raise lagThreshold above the in-flight bound"))
        elif t.get("type") == "prometheus":
            query = md.get("query", "")
            if "argus_drain_seconds" not in query or f'job="{WORKER_JOB}"' not in query:
                problems.append((f"prometheus trigger query {query!r} does not read argus_drain_seconds of job {WORKER_JOB}", "query the workers' drain signal"))
            m = re.search(r'namespace="([^"]*)"', query)
            if not m or m.group(1) != namespace:
                problems.append((f"prometheus trigger query's namespace matcher {m.group(1) if m else None!r} != the ScaledObject's namespace {namespace!r}",
                                 "copy the namespace into the query (the example overlay's replacements)"))
            if deployable and ".invalid" in md.get("serverAddress", ""):
                problems.append((f"prometheus trigger serverAddress {md.get('serverAddress')!r} is the base's placeholder", "set your Prometheus in the overlay"))
        elif t.get("type") in ("cpu", "memory"):
            if md.get("containerName", c["name"]) != c["name"]:
                problems.append((f"{t['type']} trigger containerName {md.get('containerName')!r} is not the worker container", f"set it to {c['name']}"))
            if t["type"] not in (c.get("resources", {}).get("requests") or {}):
                problems.append((f"{t['type']} trigger on a container without a {t['type']} request", f"request {t['type']} for the worker"))
    for what, fix in problems:
        report.fail(build, f"{kn(so)}: {what}", fix)
    if not problems:
        report.ok(build, f"{kn(so)} scales Deployment {name} up to {spec.get('maxReplicaCount')} = partitions; triggers agree with the workers' config")


# ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--argus", required=True)
    ap.add_argument("--keda", required=True, help="the github.com/kedacore/keda/v2 module directory")
    ap.add_argument("--k8s-versions", required=True)
    ap.add_argument("--only", choices=["builtin", "keda", "consistency"], action="append")
    ap.add_argument("builds", nargs="+", metavar="NAME=FILE")
    args = ap.parse_args()
    versions = args.k8s_versions.split(",")
    only = set(args.only or ["builtin", "keda", "consistency"])
    report = Report()
    known = known_env(args.argus) if "consistency" in only else set()
    meta_validator = object_meta_validator(versions[-1])
    for item in args.builds:
        build, _, path = item.partition("=")
        with open(path) as f:
            objs = [o for o in yaml.safe_load_all(f) if o]
        deployable = build.startswith("overlays/")
        if "builtin" in only:
            print(f"(b) [{build}] built-in objects vs the Kubernetes schemas (kubernetes-validate {kubernetes_validate.__version__ if hasattr(kubernetes_validate, '__version__') else ''})")
            check_builtin(report, build, objs, versions)
        if "keda" in only:
            print(f"(c) [{build}] KEDA objects vs KEDA's CRDs and scaler sources")
            check_keda(report, build, objs, args.keda, meta_validator)
        if "consistency" in only:
            print(f"(e) [{build}] consistency with argus ({args.argus})")
            check_consistency(report, build, objs, args.argus, known, deployable)
    if report.failures:
        print(f"check-k8s.py: {report.failures} problem(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
