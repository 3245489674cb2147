"""The chart's checks that need the Helm engine and YAML, run by
xtask/src/helm.rs in the pinned `helm` venv (xtask/python/helm.txt).

It lints and renders helm/admission with each environment's values (and an
overlay that turns every optional template on), proves that bad values fail
to render, validates every manifest (Kubernetes schemas for built-in kinds,
structural schemas for custom resources), checks the names against
environments/<env>.toml and the ArgoCD Applications against the tree, and
writes what the Rust side checks next under --out:

  <set>/NN-<kind>-<name>.yaml  one manifest per file (checkov scans them)
  <set>/rules-<name>.yaml      each PrometheusRule's groups (promtool)
  <set>/promql.tsv             source TAB expression, one per line
  <set>/db-bootstrap.sh        the bootstrap Job's script, from its ConfigMap
  <set>/db-bootstrap.env       the Job's environment: NAME=value:... or
                               NAME=secret:<secret>/<key>

Progress goes to stderr; any failure is listed and the exit code is 1.
"""

import argparse
import copy
import ipaddress
import json
import os
import re
import shutil
import sys
import tomllib

import helm_python
import jsonschema
import kubernetes_validate
import yaml

ENVS = ("dev", "prod")
CHART = "helm/admission"
ALL_FEATURES = "ci/all-features-values.yaml"
SHA = re.compile(r"^[0-9a-f]{7,40}$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")
    print(f"    ✗ {where}: {message}", file=sys.stderr)


def step(message):
    print(f"  {message}", file=sys.stderr, flush=True)


def merge(base, overlay):
    """Deep merge, as `helm -f a -f b` does: maps merge, the rest is replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def docs_of(rendered):
    """Parsed manifests of a render, NOTES.txt left out."""
    docs = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((template, doc))
    return docs


def find(docs, kind, name=None):
    return [d for _, d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


# ---------------------------------------------------------------- placeholders

# What exists only after the first `terraform apply` (endpoints, the VPC)
# is committed with `xxxx` in it until then, the certificate as the
# all-zero id (docs/deploy.md, step 4).
PLACEHOLDER = "xxxxxx"
ZERO_CERTIFICATE = "certificate/00000000-0000-0000-0000-000000000000"


def is_placeholder(value):
    return PLACEHOLDER in value or value.endswith(ZERO_CERTIFICATE)


def placeholders(obj, path=""):
    """Paths of the values that hold a placeholder (a list's index dropped)."""
    found = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found += placeholders(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for value in obj:
            found += placeholders(value, path)
    elif isinstance(obj, str) and is_placeholder(obj):
        found.append(path)
    return sorted(set(found))


def filled(obj):
    """The values as they will be once set: each run of x a run of 0, so
    that every other check sees well-formed names."""
    if isinstance(obj, dict):
        return {k: filled(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [filled(v) for v in obj]
    if isinstance(obj, str) and obj.endswith(ZERO_CERTIFICATE):
        return obj[: -len(ZERO_CERTIFICATE)] + "certificate/11111111-1111-1111-1111-111111111111"
    if isinstance(obj, str) and PLACEHOLDER in obj:
        return re.sub(r"x{4,}", lambda m: "0" * len(m.group()), obj)
    return obj


def check_placeholders_refused(chart, env, raw, namespace, release):
    """The chart refuses to render its values while they hold placeholders,
    naming each; and they are the only reason it refuses."""
    pending = placeholders(raw)
    where = f"{CHART}/values-{env}.yaml"
    try:
        render(chart, raw, namespace, release)
        if pending:
            fail(where, f"rendered although {', '.join(pending)} still hold placeholders")
    except helm_python.HelmError as e:
        message = str(e)
        if not pending:
            fail(where, f"does not render: {message.strip()[:300]}")
        elif "placeholders left from before the first terraform apply" not in message:
            fail(where, f"failed to render, but not on its placeholders: {message.strip()[:300]}")
        else:
            for path in pending:
                if path not in message:
                    fail(where, f"{path} holds a placeholder the chart does not refuse")
    return pending


# ---------------------------------------------------------------- the clusters' Kubernetes version

TFVARS = "terraform/envs/{env}/terraform.tfvars"


def kube_version_of(env):
    """The minor version an environment's EKS cluster runs (its tfvars'
    kubernetes_version), as the x.y.0 the schemas and `helm lint` take."""
    path = TFVARS.format(env=env)
    with open(path) as f:
        m = re.search(r'^\s*kubernetes_version\s*=\s*"(\d+)\.(\d+)"', f.read(), re.M)
    if not m:
        raise SystemExit(f"helm_check: {path} sets no kubernetes_version = \"1.NN\"")
    version = f"{m.group(1)}.{m.group(2)}.0"
    try:
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}},
                                     version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        raise SystemExit(f"helm_check: kubernetes-validate has no schemas for Kubernetes {version} ({path}): "
                         "raise its pin in xtask/python/helm.txt")
    return version


def check_autoscaler_version(env, kube_version):
    """The Cluster Autoscaler's minor version must be the cluster's."""
    path = f"helm/addons/cluster-autoscaler/values-{env}.yaml"
    tag = str(load_yaml(path).get("image", {}).get("tag", ""))
    minor = ".".join(kube_version.split(".")[:2])
    if not re.match(rf"^v{re.escape(minor)}\.\d+$", tag):
        fail(path, f"image.tag {tag!r} is not a Cluster Autoscaler v{minor}.x, the minor of the cluster "
                   f"({TFVARS.format(env=env)} kubernetes_version)")


# ---------------------------------------------------------------- custom resources

def _obj(props, required=(), extra=False):
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": extra}


_STR = {"type": "string", "minLength": 1}
_META = _obj({"name": _STR, "namespace": _STR, "labels": {"type": "object"},
              "annotations": {"type": "object"}, "finalizers": {"type": "array", "items": _STR}},
             ["name"])
_RULE = {"type": "object", "additionalProperties": False,
         "properties": {"alert": _STR, "record": _STR, "expr": _STR,
                        "for": {"type": "string", "pattern": r"^\d+[smhd]$"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}}},
         "required": ["expr"], "oneOf": [{"required": ["alert"]}, {"required": ["record"]}]}
_APP_SOURCE = _obj({
    "repoURL": _STR, "targetRevision": _STR, "path": _STR, "chart": _STR, "ref": _STR,
    "helm": _obj({"releaseName": _STR, "valueFiles": {"type": "array", "items": _STR, "minItems": 1},
                  "values": {"type": "string"}, "valuesObject": {"type": "object"}}),
    "directory": {"type": "object"},
}, ["repoURL", "targetRevision"])
_SYNC = _obj({
    "automated": _obj({"prune": {"type": "boolean"}, "selfHeal": {"type": "boolean"},
                       "allowEmpty": {"type": "boolean"}}),
    "syncOptions": {"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z]+=[A-Za-z0-9-]+$"}},
    "retry": {"type": "object"},
})

# The fields this repository uses, with their types; unknown fields are
# refused (a typo would otherwise be silently ignored by the operator).
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): _obj({
        "apiVersion": _STR, "kind": _STR, "metadata": _META,
        "spec": _obj({"groups": {"type": "array", "minItems": 1, "items": _obj({
            "name": _STR, "interval": {"type": "string"},
            "rules": {"type": "array", "minItems": 1, "items": _RULE}}, ["name", "rules"])}}, ["groups"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _obj({
        "apiVersion": _STR, "kind": _STR, "metadata": _META,
        "spec": _obj({
            "selector": _obj({"matchLabels": {"type": "object"}}, ["matchLabels"]),
            "namespaceSelector": _obj({"matchNames": {"type": "array", "items": _STR}}),
            "endpoints": {"type": "array", "minItems": 1, "items": _obj({
                "port": _STR, "path": {"type": "string", "pattern": "^/"},
                "interval": {"type": "string", "pattern": r"^\d+(ms|s|m)$"},
                "scrapeTimeout": {"type": "string", "pattern": r"^\d+(ms|s|m)$"}}, ["port"])},
        }, ["selector", "endpoints"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("keda.sh/v1alpha1", "ScaledObject"): _obj({
        "apiVersion": _STR, "kind": _STR, "metadata": _META,
        "spec": _obj({
            "scaleTargetRef": _obj({"apiVersion": _STR, "kind": _STR, "name": _STR}, ["name"]),
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "pollingInterval": {"type": "integer", "minimum": 1},
            "cooldownPeriod": {"type": "integer", "minimum": 0},
            "advanced": {"type": "object"},
            "triggers": {"type": "array", "minItems": 1, "items": _obj({
                "type": {"enum": ["cpu", "memory", "prometheus"]},
                "metricType": {"enum": ["Utilization", "AverageValue", "Value"]},
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}}},
                ["type", "metadata"])},
        }, ["scaleTargetRef", "triggers"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("external-secrets.io/v1", "ExternalSecret"): _obj({
        "apiVersion": _STR, "kind": _STR, "metadata": _META,
        "spec": _obj({
            "refreshInterval": {"type": "string", "pattern": r"^\d+[smh]$"},
            "secretStoreRef": _obj({"kind": {"enum": ["SecretStore", "ClusterSecretStore"]}, "name": _STR},
                                   ["kind", "name"]),
            "target": _obj({"name": _STR, "creationPolicy": {"enum": ["Owner", "Orphan", "Merge", "None"]},
                            "template": _obj({"engineVersion": {"enum": ["v2"]},
                                              "data": {"type": "object", "additionalProperties": {"type": "string"}}})},
                           ["name"]),
            "data": {"type": "array", "minItems": 1, "items": _obj({
                "secretKey": _STR,
                "remoteRef": _obj({"key": {"type": "string", "pattern": r"^(arn:aws[a-z-]*:secretsmanager:|[A-Za-z0-9/_+=.@!-]+$)"},
                                   "property": _STR}, ["key"])}, ["secretKey", "remoteRef"])},
        }, ["secretStoreRef", "target", "data"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("argoproj.io/v1alpha1", "Application"): _obj({
        "apiVersion": _STR, "kind": _STR, "metadata": _META,
        "spec": _obj({
            "project": _STR,
            "source": _APP_SOURCE,
            "sources": {"type": "array", "minItems": 1, "items": _APP_SOURCE},
            "destination": _obj({"server": _STR, "name": _STR, "namespace": _STR}, ["namespace"]),
            "syncPolicy": _SYNC,
            "ignoreDifferences": {"type": "array"},
            "revisionHistoryLimit": {"type": "integer", "minimum": 1},
        }, ["project", "destination"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("argoproj.io/v1alpha1", "AppProject"): _obj({
        "apiVersion": _STR, "kind": _STR, "metadata": _META,
        "spec": _obj({
            "description": {"type": "string"},
            "sourceRepos": {"type": "array", "minItems": 1, "items": _STR},
            "destinations": {"type": "array", "minItems": 1,
                             "items": _obj({"server": _STR, "namespace": _STR, "name": _STR})},
            "clusterResourceWhitelist": {"type": "array", "items": _obj({"group": {"type": "string"}, "kind": _STR})},
            "namespaceResourceWhitelist": {"type": "array", "items": _obj({"group": {"type": "string"}, "kind": _STR})},
        }, ["sourceRepos", "destinations"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
}


def validate_manifest(where, doc, kube_version):
    """Kubernetes' own schema for built-in kinds, ours for custom resources."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRD_SCHEMAS:
        try:
            jsonschema.Draft202012Validator(CRD_SCHEMAS[key]).validate(doc)
        except jsonschema.ValidationError as e:
            path = "/".join(str(p) for p in e.absolute_path)
            fail(where, f"{key[1]} at /{path}: {e.message}")
        if key == ("argoproj.io/v1alpha1", "Application"):
            spec = doc["spec"]
            if ("source" in spec) == ("sources" in spec):
                fail(where, "an Application needs exactly one of source and sources")
        return
    try:
        kubernetes_validate.validate(doc, kube_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        fail(where, f"no Kubernetes {kube_version} schema for {key[0]} {key[1]}, and no structural one here")
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path)
        fail(where, f"{key[1]} at /{path}: {e.message}")


# ---------------------------------------------------------------- render sets

def render(chart, values, namespace, release):
    return chart.render(values, name=release, namespace=namespace, is_install=True)


def write_set(out_dir, docs):
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    for i, (_, doc) in enumerate(docs):
        name = f"{i:02d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        with open(os.path.join(out_dir, name), "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)


def one_line(expr):
    return " ".join(expr.split())


def write_promql(out_dir, docs):
    """Every PromQL expression the set names: rules, dashboard, KEDA."""
    lines = []
    for doc in find(docs, "PrometheusRule"):
        name = doc["metadata"]["name"]
        with open(os.path.join(out_dir, f"rules-{name}.yaml"), "w") as f:
            yaml.safe_dump({"groups": doc["spec"]["groups"]}, f, sort_keys=False)
        for group in doc["spec"]["groups"]:
            for rule in group["rules"]:
                lines.append((f"PrometheusRule {name} {rule.get('alert') or rule.get('record')}", rule["expr"]))
    for doc in find(docs, "ConfigMap"):
        for key, text in (doc.get("data") or {}).items():
            if not key.endswith(".json"):
                continue
            dashboard = json.loads(text)
            for panel in dashboard.get("panels", []):
                for target in panel.get("targets", []):
                    lines.append((f"dashboard {key} panel {panel.get('title')!r}", target["expr"]))
            for var in dashboard.get("templating", {}).get("list", []):
                query = var.get("query")
                query = query.get("query") if isinstance(query, dict) else query
                m = re.match(r"^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", query or "")
                if var.get("type") == "query" and m:
                    lines.append((f"dashboard {key} variable {var['name']}", m.group(1)))
    for doc in find(docs, "ScaledObject"):
        for trigger in doc["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                lines.append((f"ScaledObject {doc['metadata']['name']}", trigger["metadata"]["query"]))
    with open(os.path.join(out_dir, "promql.tsv"), "w") as f:
        for source, expr in lines:
            f.write(f"{source}\t{one_line(expr)}\n")
    return len(lines)


def write_bootstrap(out_dir, docs, where):
    maps = [d for d in find(docs, "ConfigMap") if "db-bootstrap.sh" in (d.get("data") or {})]
    jobs = [d for d in find(docs, "Job") if d["metadata"]["name"].endswith("-db-bootstrap")]
    if len(maps) != 1 or len(jobs) != 1:
        fail(where, "expected one db-bootstrap ConfigMap and one db-bootstrap Job")
        return
    with open(os.path.join(out_dir, "db-bootstrap.sh"), "w") as f:
        f.write(maps[0]["data"]["db-bootstrap.sh"])
    container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in jobs[0]["spec"]["template"]["spec"]["volumes"]}
    command = container.get("command", [])
    script_mount = next((mounts[n] for n, v in volumes.items()
                         if v.get("configMap", {}).get("name") == maps[0]["metadata"]["name"] and n in mounts), None)
    if script_mount is None or command[-1:] != [f"{script_mount}/db-bootstrap.sh"]:
        fail(where, f"the bootstrap Job does not run the script from its ConfigMap (command {command})")
    with open(os.path.join(out_dir, "db-bootstrap.env"), "w") as f:
        for env in container["env"]:
            if "value" in env:
                f.write(f"{env['name']}=value:{env['value']}\n")
            else:
                ref = env["valueFrom"]["secretKeyRef"]
                f.write(f"{env['name']}=secret:{ref['name']}/{ref['key']}\n")


# ---------------------------------------------------------------- agreement with environments/<env>.toml

def check_environment(env, t, values, docs, app_env):
    where = f"{env}"
    k, aws, app = t["kubernetes"], t["aws"], t["app"]
    account, region = aws["account_id"], aws["region"]
    if k["values_file"] != f"{CHART}/values-{env}.yaml" or not os.path.isfile(k["values_file"]):
        fail(where, f"[kubernetes].values_file is {k['values_file']}, expected an existing {CHART}/values-{env}.yaml")
    for _, doc in docs:
        ns = doc["metadata"].get("namespace")
        if ns != k["namespace"]:
            fail(where, f"{doc['kind']} {doc['metadata']['name']} is in namespace {ns}, not [kubernetes].namespace {k['namespace']}")

    role_arn = f"arn:aws:iam::{account}:role/{app['role_name']}"
    sas = find(docs, "ServiceAccount")
    if len(sas) != 1:
        fail(where, f"expected one ServiceAccount, found {len(sas)}")
    else:
        sa = sas[0]
        if sa["metadata"]["name"] != k["service_account"]:
            fail(where, f"ServiceAccount is {sa['metadata']['name']}, not [kubernetes].service_account {k['service_account']}")
        got = sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
        if got != role_arn:
            fail(where, f"ServiceAccount role annotation is {got}, expected {role_arn} (the eks module's [app].role_name)")

    deployments = find(docs, "Deployment")
    if len(deployments) != 1:
        fail(where, f"expected one Deployment, found {len(deployments)}")
        return
    pod = deployments[0]["spec"]["template"]["spec"]
    if pod.get("serviceAccountName") != k["service_account"]:
        fail(where, f"the pods run as {pod.get('serviceAccountName')}, not {k['service_account']}")
    c = pod["containers"][0]
    repo = f"{account}.dkr.ecr.{region}.amazonaws.com/{app['ecr_repository']}"
    image_repo, _, tag = c["image"].rpartition(":")
    if image_repo != repo:
        fail(where, f"image repository {image_repo}, expected {repo}")
    if not SHA.match(tag):
        fail(where, f"image tag {tag!r} is not an immutable git short sha")

    env_vars = {e["name"]: e for e in c["env"]}
    allowed = set(app_env) | {"RUST_LOG", "KINESIS_STREAM"}
    for name in env_vars:
        if name not in allowed:
            fail(where, f"env {name} is none of the app's settings (app/src/config.rs)")
    for name in ("LISTEN_ADDR", "REDIS_CLUSTER_NODES", "ADMIN_TOKEN", "TOKEN_KEYS", "REPLICA_ID",
                 "TRUSTED_PROXIES", "KEY_PREFIX", "LOG_FORMAT", "DATABASE_URL", "DATABASE_READ_URL", "KINESIS_STREAM"):
        if name not in env_vars:
            fail(where, f"env {name} is missing")
    value = lambda n: env_vars.get(n, {}).get("value")
    if env_vars.get("REPLICA_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        fail(where, "REPLICA_ID must come from the pod's name (downward API)")
    for n in ("ADMIN_TOKEN", "DATABASE_URL", "DATABASE_READ_URL"):
        if "secretKeyRef" not in env_vars.get(n, {}).get("valueFrom", {}):
            fail(where, f"{n} must come from a Secret")
    if value("KINESIS_STREAM") != app["kinesis_stream"]:
        fail(where, f"KINESIS_STREAM is {value('KINESIS_STREAM')}, not [app].kinesis_stream {app['kinesis_stream']}")
    if value("TRUSTED_PROXIES") != t["network"]["vpc_cidr"]:
        fail(where, f"TRUSTED_PROXIES is {value('TRUSTED_PROXIES')}, not [network].vpc_cidr {t['network']['vpc_cidr']}")
    for node in (value("REDIS_CLUSTER_NODES") or "").split(","):
        if not re.match(rf"^rediss://{re.escape(app['cache_name'])}-[a-z0-9]+\.serverless\.[a-z0-9]+\.cache\.amazonaws\.com:6379$", node):
            fail(where, f"REDIS_CLUSTER_NODES {node!r} is not the TLS endpoint of [app].cache_name {app['cache_name']}")
    db = values["database"]
    for field, kind in (("host", "cluster"), ("readerHost", "cluster-ro")):
        if not re.match(rf"^{re.escape(app['aurora_cluster'])}\.{kind}-[a-z0-9]+\.{region}\.rds\.amazonaws\.com$", db[field]):
            fail(where, f"database.{field} {db[field]} is not the {kind} endpoint of [app].aurora_cluster {app['aurora_cluster']} in {region}")
    # TOKEN_KEYS: kid:path, every path a file of the token-key Secret volume.
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for spec in (value("TOKEN_KEYS") or "").split(","):
        kid, _, path = spec.partition(":")
        directory, _, file = path.rpartition("/")
        volume = volumes.get(mounts.get(directory, ""), {})
        items = [i["path"] for i in volume.get("secret", {}).get("items", [])]
        if not kid or file not in items:
            fail(where, f"TOKEN_KEYS entry {spec!r} is not a file mounted from a Secret")
    sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
    if not sleep or pod.get("terminationGracePeriodSeconds", 30) <= sleep + 10:
        fail(where, "preStop sleep missing, or terminationGracePeriodSeconds not above it plus the app's 10 s")
    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/health/ready" or \
            c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health/live":
        fail(where, "probes must be /health/ready and /health/live")

    ingresses = find(docs, "Ingress")
    if len(ingresses) != 1:
        fail(where, "expected one Ingress")
    else:
        ing = ingresses[0]
        a = ing["metadata"]["annotations"]
        host = ing["spec"]["rules"][0]["host"]
        if host != t["ingress"]["host"] or not host.endswith("." + t["ingress"]["zone"]):
            fail(where, f"Ingress host {host}, expected [ingress].host {t['ingress']['host']} in zone {t['ingress']['zone']}")
        if a.get("alb.ingress.kubernetes.io/group.name") != t["ingress"]["group_name"]:
            fail(where, f"ALB group {a.get('alb.ingress.kubernetes.io/group.name')}, expected [ingress].group_name")
        if not re.match(rf"^arn:aws:acm:{region}:{account}:certificate/", a.get("alb.ingress.kubernetes.io/certificate-arn", "")):
            fail(where, "the certificate ARN is not an ACM certificate of this account and region")
        idle = re.search(r"idle_timeout\.timeout_seconds=(\d+)", a.get("alb.ingress.kubernetes.io/load-balancer-attributes", ""))
        if not idle or int(idle.group(1)) <= 60:
            fail(where, "the ALB idle timeout must be set above 60 s for WebSockets")
        dereg = re.search(r"deregistration_delay\.timeout_seconds=(\d+)", a.get("alb.ingress.kubernetes.io/target-group-attributes", ""))
        if not dereg or int(dereg.group(1)) > 60:
            fail(where, "target-group deregistration delay must be set, about 30 s")
        if a.get("alb.ingress.kubernetes.io/target-type") != "ip":
            fail(where, "the Ingress must use target-type ip")
        if a.get("alb.ingress.kubernetes.io/healthcheck-path") != "/health/ready":
            fail(where, "the ALB must check /health/ready")
        for name in ("healthcheck-interval-seconds", "healthy-threshold-count", "unhealthy-threshold-count"):
            if not str(a.get(f"alb.ingress.kubernetes.io/{name}", "")).isdigit():
                fail(where, f"the target group's {name} is not set")
        if '{"HTTPS": 443}' not in a.get("alb.ingress.kubernetes.io/listen-ports", ""):
            fail(where, "the ALB does not listen on HTTPS 443")

    rules = {r.get("alert"): r for p in find(docs, "PrometheusRule") for g in p["spec"]["groups"] for r in g["rules"]}
    for alert in REQUIRED_ALERTS:
        if alert not in rules:
            fail(where, f"the PrometheusRule has no {alert} alert")
    stalled = rules.get("AdmissionLoopStalled", {}).get("expr", "")
    if "admission_last_admit_timestamp_seconds" not in stalled:
        fail(where, "AdmissionLoopStalled must read admission_last_admit_timestamp_seconds")

    check_database_tls(where, docs, values)

    check_hooks(where, values, docs)

    hpas = find(docs, "HorizontalPodAutoscaler")
    if len(hpas) != 1:
        fail(where, f"expected one HorizontalPodAutoscaler, found {len(hpas)}")
    else:
        spec = hpas[0]["spec"]
        want = HPA_BOUNDS[env]
        if (spec["minReplicas"], spec["maxReplicas"]) != want:
            fail(where, f"the HPA scales {spec['minReplicas']}-{spec['maxReplicas']}, expected {want[0]}-{want[1]} as the seeds ran")
        targets = {m["resource"]["name"]: m["resource"]["target"].get("averageUtilization")
                   for m in spec.get("metrics", []) if m.get("type") == "Resource"}
        if targets != {"cpu": 60, "memory": 75}:
            fail(where, f"the HPA targets {targets}, expected cpu 60% and memory 75%")
        if spec["scaleTargetRef"].get("name") != deployments[0]["metadata"]["name"]:
            fail(where, "the HPA does not scale the Deployment")
    pdbs = find(docs, "PodDisruptionBudget")
    if hpas and hpas[0]["spec"]["minReplicas"] > 1 and not pdbs:
        fail(where, "more than one replica runs but no PodDisruptionBudget was rendered")


# The alerts issue 11 asks for: a long queue, join p99 over 1 s, the 5xx
# rate, a stalled admission loop, readiness degraded.
REQUIRED_ALERTS = ["AdmissionQueueLong", "AdmissionJoinLatencyHigh", "AdmissionHigh5xxRate",
                   "AdmissionLoopStalled", "AdmissionReadinessDegraded"]

# Replicas the HPA keeps, as the seeds ran them.
HPA_BOUNDS = {"dev": (2, 10), "prod": (4, 100)}


def check_hooks(where, values, docs):
    """The database Jobs run before each sync (ArgoCD PreSync, Helm
    pre-install/pre-upgrade), the bootstrap first, as the master user; the
    migration as the migrator, running `admission migrate`."""
    jobs = {d["metadata"]["name"]: d for d in find(docs, "Job")}
    secrets = values["database"]["secrets"]
    weights = {}
    for suffix, secret in (("-db-bootstrap", secrets["master"]), ("-migrate", secrets["migrator"])):
        job = next((j for n, j in jobs.items() if n.endswith(suffix)), None)
        if job is None:
            fail(where, f"no *{suffix} Job rendered (names: {sorted(jobs)})")
            continue
        a = job["metadata"].get("annotations", {})
        if a.get("argocd.argoproj.io/hook") != "PreSync" or \
                set(a.get("helm.sh/hook", "").split(",")) != {"pre-install", "pre-upgrade"}:
            fail(where, f"Job {job['metadata']['name']} is not an ArgoCD PreSync and Helm pre-install,pre-upgrade hook")
        weights[suffix] = int(a.get("argocd.argoproj.io/sync-wave", "0"))
        c = job["spec"]["template"]["spec"]["containers"][0]
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
        if suffix == "-migrate":
            if refs != {secret} or c.get("args") != ["migrate"]:
                fail(where, f"the migration Job must run `admission migrate` with the migrator's Secret {secret} alone (reads {refs})")
        elif secret not in refs:
            fail(where, f"the bootstrap Job does not read the master's Secret {secret}")
    if len(weights) == 2 and not weights["-db-bootstrap"] < weights["-migrate"]:
        fail(where, "the bootstrap Job must run before the migration Job (a lower sync wave)")


DB_TLS = re.compile(r"[?&]ssl-mode=(REQUIRED|VERIFY_CA|VERIFY_IDENTITY)(&|$)", re.I)


def check_key_mounts(where, docs, var, secret, count):
    """`var` (TOKEN_KEYS, IDENTITY_KEYS) lists `count` kid:path entries, each
    a file of `secret` mounted into the app container."""
    pod = find(docs, "Deployment")[0]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    specs = [x for x in (env.get(var) or "").split(",") if x]
    if len(specs) != count:
        fail(where, f"{var} has {len(specs)} keys, expected {count}: {env.get(var)!r}")
    for spec in specs:
        kid, _, path = spec.partition(":")
        directory, _, file = path.rpartition("/")
        volume = volumes.get(mounts.get(directory, ""), {}).get("secret", {})
        if not kid or volume.get("secretName") != secret or file not in [i["path"] for i in volume.get("items", [])]:
            fail(where, f"{var} entry {spec!r} is not a file of Secret {secret} mounted at {directory}")


def mounted_file(pod, container, path, secret):
    """Whether `path` is a file of Secret `secret` mounted into `container`."""
    directory, _, file = path.rpartition("/")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volume = {v["name"]: v for v in pod.get("volumes", [])}.get(mounts.get(directory, ""), {}).get("secret", {})
    return volume.get("secretName") == secret and file in [i["path"] for i in volume.get("items", [])]


def check_database_tls(where, docs, values=None):
    """Every database URL the chart writes (ExternalSecret templates) and the
    bootstrap client require TLS; with VERIFY_IDENTITY, the CA bundle they
    name is the caSecret's file, mounted wherever the URLs are used."""
    urls = []
    for es in find(docs, "ExternalSecret"):
        url = es["spec"]["target"].get("template", {}).get("data", {}).get("url")
        if url is None:
            continue
        urls.append((es["metadata"]["name"], url))
        if not DB_TLS.search(url):
            fail(where, f"ExternalSecret {es['metadata']['name']}: url {url!r} does not require TLS (ssl-mode=REQUIRED)")
    if values is None:
        return
    tls = values["database"]["tls"]
    jobs = {d["metadata"]["name"]: d for d in find(docs, "Job")}
    users = [("Deployment", find(docs, "Deployment")[0])] + \
            [(n, j) for n, j in jobs.items() if n.endswith("-migrate")]
    boot = next((j for n, j in jobs.items() if n.endswith("-db-bootstrap")), None)
    if boot is not None:
        c = boot["spec"]["template"]["spec"]["containers"][0]
        flags = next((e.get("value", "") for e in c["env"] if e["name"] == "DB_CLIENT_FLAGS"), "")
        if f"--ssl-mode={tls['mode']}" not in flags.split():
            fail(where, f"the bootstrap client's flags {flags!r} do not require TLS as database.tls.mode {tls['mode']}")
        ca = re.search(r"--ssl-ca=(\S+)", flags)
        if tls["mode"] == "VERIFY_IDENTITY" and (not ca or not mounted_file(boot["spec"]["template"]["spec"], c, ca.group(1), tls["caSecret"])):
            fail(where, f"the bootstrap client's --ssl-ca is not the CA bundle of Secret {tls['caSecret']} mounted into it")
    if tls["mode"] != "VERIFY_IDENTITY":
        return
    for name, url in urls:
        ca = re.search(r"[?&]ssl-ca=([^&]+)", url)
        if not ca:
            fail(where, f"ExternalSecret {name}: VERIFY_IDENTITY without ssl-ca in {url!r}")
            continue
        for kind, obj in users:
            pod = obj["spec"]["template"]["spec"]
            if not mounted_file(pod, pod["containers"][0], ca.group(1), tls["caSecret"]):
                fail(where, f"{kind} {obj['metadata']['name']}: the URLs' CA {ca.group(1)} is not mounted from Secret {tls['caSecret']}")


def check_docs_database_tls():
    """The database URLs docs/deploy.md tells operators to store require TLS."""
    path = "docs/deploy.md"
    urls = [line.strip() for line in open(path) if "mysql://" in line]
    if not urls:
        fail(path, "shows no mysql:// URL for the database Secrets")
    for line in urls:
        if not DB_TLS.search(line.split("mysql://", 1)[1].rstrip('")\'')):
            fail(path, f"a database URL without ssl-mode=REQUIRED: {line}")
    return len(urls)


def check_addons(env, t):
    """The add-ons' committed values against environments/<env>.toml."""
    aws, k = t["aws"], t["kubernetes"]
    ad = k["addons"]
    role = lambda name: f"arn:aws:iam::{aws['account_id']}:role/{name}"
    d = "helm/addons"

    def expect(addon, got, want, what):
        if got != want:
            fail(f"{d}/{addon}/values-{env}.yaml", f"{what} is {got!r}, expected {want!r}")

    pending = []

    def load(addon):
        raw = load_yaml(f"{d}/{addon}/values-{env}.yaml")
        pending.extend(f"{addon} {p}" for p in placeholders(raw))
        return filled(raw)

    lbc = load("aws-load-balancer-controller")
    expect("aws-load-balancer-controller", lbc.get("clusterName"), k["cluster"], "clusterName")
    expect("aws-load-balancer-controller", lbc.get("region"), aws["region"], "region")
    # Pods cannot reach the node's instance metadata (one hop), so the
    # controller cannot discover the VPC: it must be given.
    if not re.match(r"^vpc-[0-9a-f]{8,17}$", str(lbc.get("vpcId", ""))):
        fail(f"{d}/aws-load-balancer-controller/values-{env}.yaml",
             f"vpcId {lbc.get('vpcId')!r} is not a VPC id (terraform output vpc_id)")
    expect("aws-load-balancer-controller", lbc["serviceAccount"]["name"], "aws-load-balancer-controller", "serviceAccount.name")
    expect("aws-load-balancer-controller", lbc["serviceAccount"]["annotations"].get("eks.amazonaws.com/role-arn"),
           role(ad["lb_controller_role_name"]), "the IRSA role")

    dns = load("external-dns")
    expect("external-dns", dns.get("txtOwnerId"), k["cluster"], "txtOwnerId")
    expect("external-dns", dns.get("domainFilters"), [t["ingress"]["zone"]], "domainFilters")
    expect("external-dns", {e["name"]: e["value"] for e in dns.get("env", [])}.get("AWS_DEFAULT_REGION"),
           aws["region"], "AWS_DEFAULT_REGION")
    expect("external-dns", dns["serviceAccount"]["name"], "external-dns", "serviceAccount.name")
    expect("external-dns", dns["serviceAccount"]["annotations"].get("eks.amazonaws.com/role-arn"),
           role(ad["external_dns_role_name"]), "the IRSA role")

    if ad["node_autoscaler"] != "cluster-autoscaler":
        fail(f"environments/{env}.toml", f"[kubernetes.addons].node_autoscaler {ad['node_autoscaler']!r} has no values here")
    ca = load("cluster-autoscaler")
    expect("cluster-autoscaler", ca.get("autoDiscovery", {}).get("clusterName"), k["cluster"], "autoDiscovery.clusterName")
    expect("cluster-autoscaler", ca.get("awsRegion"), aws["region"], "awsRegion")
    expect("cluster-autoscaler", ca["rbac"]["serviceAccount"]["name"], "cluster-autoscaler", "rbac.serviceAccount.name")
    expect("cluster-autoscaler", ca["rbac"]["serviceAccount"]["annotations"].get("eks.amazonaws.com/role-arn"),
           role(ad["node_autoscaler_role_name"]), "the IRSA role")

    kps = load("kube-prometheus-stack")
    expect("kube-prometheus-stack", kps["prometheus"]["prometheusSpec"]["externalLabels"].get("cluster"), k["cluster"],
           "prometheus externalLabels.cluster")
    if ad["namespace"] != "kube-system":
        fail(f"environments/{env}.toml", "[kubernetes.addons].namespace must be kube-system, where the Applications install them")
    for addon in sorted(os.listdir(d)):
        if addon not in ("aws-load-balancer-controller", "external-dns", "cluster-autoscaler", "kube-prometheus-stack"):
            load(addon)
    return pending


def check_argocd(env, t, kube_version):
    """The Applications of one environment: valid, and pointing at what exists."""
    k, g = t["kubernetes"], t["gitops"]
    base = f"helm/argocd/{env}"
    files = [f"{base}/root.yaml"] + sorted(
        os.path.join(f"{base}/apps", f) for f in os.listdir(f"{base}/apps") if f.endswith(".yaml"))
    apps = {}
    for path in files:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    validate_manifest(path, doc, kube_version)
                    if doc["kind"] == "Application":
                        apps[doc["metadata"]["name"]] = (path, doc)
    projects = {d["metadata"]["name"] for p in files for d in yaml.safe_load_all(open(p)) if d and d["kind"] == "AppProject"}

    def repo_paths(path, src):
        if src["repoURL"] != g["repo_url"] or src["targetRevision"] != g["revision"]:
            fail(path, f"source {src['repoURL']}@{src['targetRevision']} is not [gitops] {g['repo_url']}@{g['revision']}")

    root = apps.pop("root", None)
    if not root or root[1]["spec"]["source"]["path"] != f"{base}/apps":
        fail(base, f"root.yaml must be an Application named root syncing {base}/apps")
    else:
        repo_paths(root[0], root[1]["spec"]["source"])

    addons = sorted(os.listdir("helm/addons"))
    for name, (path, app) in sorted(apps.items()):
        spec = app["spec"]
        if spec["project"] not in projects:
            fail(path, f"{name}: project {spec['project']} is not defined in {base}/apps")
        automated = "automated" in (spec.get("syncPolicy") or {})
        if name == k["release"]:
            src = spec["source"]
            repo_paths(path, src)
            chart_dir = src["path"]
            if not os.path.isfile(os.path.join(chart_dir, "Chart.yaml")):
                fail(path, f"{name}: path {chart_dir} holds no chart")
            files_ = [os.path.normpath(os.path.join(chart_dir, v)) for v in src["helm"]["valueFiles"]]
            for v in files_:
                if not os.path.isfile(v):
                    fail(path, f"{name}: values file {v} does not exist")
            if files_ != [k["values_file"]]:
                fail(path, f"{name}: values files {files_}, expected [{k['values_file']}] ([kubernetes].values_file)")
            if src["helm"].get("releaseName") != k["release"]:
                fail(path, f"{name}: releaseName {src['helm'].get('releaseName')}, expected [kubernetes].release {k['release']}")
            if spec["destination"]["namespace"] != k["namespace"]:
                fail(path, f"{name}: namespace {spec['destination']['namespace']}, expected {k['namespace']}")
            want_auto = env == "dev"
            if automated != want_auto:
                fail(path, f"{name}: {env} must {'sync by itself' if want_auto else 'sync only by hand'}")
            if want_auto and not spec["syncPolicy"]["automated"].get("selfHeal"):
                fail(path, f"{name}: dev must self-heal")
            continue
        if name not in addons:
            fail(path, f"{name}: no helm/addons/{name} values for this add-on")
            continue
        addons.remove(name)
        sources = spec.get("sources", [])
        chart = [s for s in sources if "chart" in s]
        ref = [s for s in sources if s.get("ref") == "values"]
        if len(chart) != 1 or len(ref) != 1:
            fail(path, f"{name}: expected one chart source and one `ref: values` source")
            continue
        repo_paths(path, ref[0])
        if not SEMVER.match(str(chart[0]["targetRevision"])):
            fail(path, f"{name}: chart version {chart[0]['targetRevision']!r} is not pinned to an exact version")
        for v in chart[0]["helm"]["valueFiles"]:
            if not v.startswith("$values/"):
                fail(path, f"{name}: values file {v} is not from this repository ($values/...)")
            elif not os.path.isfile(v[len("$values/"):]):
                fail(path, f"{name}: values file {v[len('$values/'):]} does not exist")
            elif v != f"$values/helm/addons/{name}/values-{env}.yaml":
                fail(path, f"{name}: values file {v} is not this environment's")
        if automated != (env == "dev"):
            fail(path, f"{name}: add-ons sync by themselves in dev only")
    for name in addons:
        fail(base, f"helm/addons/{name} has no Application")
    return len(apps)


# ---------------------------------------------------------------- values.yaml's comments

def undocumented_values(text):
    """Keys of values.yaml that set a value without a comment right above
    them, unless an enclosing key's comment (`# -- ...`) documents the
    whole block (e.g. a security context)."""
    stack = []  # (indent, key, documents its whole block)
    missing = []
    comment = None
    for n, line in enumerate(text.split("\n"), 1):
        s = line.strip()
        if not s:
            comment = None
            continue
        if s.startswith("#"):
            comment = s
            continue
        m = re.match(r"^( *)([A-Za-z0-9_.-]+):(.*)$", line)
        if not m:  # list items and continuation lines
            comment = None
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        covered = any(block for _, _, block in stack)
        if comment is None and not covered and rest and not rest.startswith("#"):
            missing.append(f"line {n}: {'.'.join([k for _, k, _ in stack] + [key])}")
        stack.append((indent, key, comment is not None and comment.startswith("# --")))
        comment = None
    return missing


def check_values_comments():
    path = f"{CHART}/values.yaml"
    missing = undocumented_values(open(path).read())
    for m in missing:
        fail(path, f"{m} has no comment")
    # The rule itself: a value without a comment is caught.
    if undocumented_values("# Block.\na:\n  # -- B.\n  b: 1\n  c: 2\n") != ["line 5: a.c"]:
        fail("helm_check.py", "undocumented_values misses an uncommented value")


# ---------------------------------------------------------------- the image

def check_dockerfile(values):
    """app/Dockerfile: multi-stage, the last stage small and non-root as the
    chart runs it, with CA certificates (TLS to ElastiCache, Aurora, AWS)."""
    path = "app/Dockerfile"
    lines = [l.strip() for l in open(path) if l.strip() and not l.strip().startswith("#")]
    froms = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
    if len(froms) < 2:
        fail(path, "is not a multi-stage build")
        return
    final = lines[froms[-1]:]
    base = final[0].split()[1]
    users = [l.split()[1] for l in final if l.upper().startswith("USER ")]
    uid = str(values["securityContext"]["runAsUser"])
    if not users or users[-1].split(":")[0] != uid:
        fail(path, f"the final stage must run as USER {uid} (the chart's runAsUser), not {users[-1] if users else 'root'}")
    has_ca = base.startswith(("gcr.io/distroless/static", "gcr.io/distroless/cc", "gcr.io/distroless/base")) or \
        any("ca-certificates" in l for l in final)
    if not has_ca:
        fail(path, f"the final stage ({base}) has no CA certificates")
    if any(re.match(r"^(RUN|COPY|ADD)\b", l) and "cargo" in l for l in final):
        fail(path, "the final stage builds: only the binary belongs in it")
    if base.endswith(":latest") or ":" not in base and "@" not in base:
        fail(path, f"the final base image {base} is not pinned")


# ---------------------------------------------------------------- GitLab CI, structurally

CI_STAGES = ["lint", "test", "build", "deploy", "notify"]
# Top-level keys of a CI file that are not jobs.
CI_KEYWORDS = {"stages", "include", "workflow", "variables", "default", "image", "services", "cache",
               "before_script", "after_script"}
# What CI may run itself instead of through `cargo xtask`: the tools the
# issue names (cargo-deny, cargo-llvm-cov, curl) and the ops binary's build.
CI_DIRECT = [r"^cargo install cargo-(deny|llvm-cov) --locked --version ", r"^cargo deny ", r"^cargo llvm-cov ",
             r"^cargo build --release --locked -p ops$"]
# What only xtask may run: a job calling these directly would drift from
# what people run.
CI_FORBIDDEN = re.compile(r"(^|[;&|]\s*)(cargo (test|clippy|fmt|run)|helm |kubectl |terraform |docker (build|push)|argocd |checkov )")


def ci_script(job):
    lines = []
    for key in ("before_script", "script"):
        stack = list(job.get(key, []))
        while stack:
            item = stack.pop(0)
            if isinstance(item, list):
                stack[0:0] = item
            else:
                lines.extend(line.strip() for line in str(item).splitlines() if line.strip())
    return lines


def check_gitlab_ci():
    """The pipeline's shape: stages, includes, rules, xtask calls, manual
    promotion, notifications, the cargo cache."""
    where = ".gitlab-ci.yml"
    root = load_yaml(where)
    files = sorted(f"gitlab-ci/{f}" for f in os.listdir("gitlab-ci") if f.endswith(".yml"))
    if root.get("stages") != CI_STAGES:
        fail(where, f"stages are {root.get('stages')}, expected {CI_STAGES}")
    includes = [i.get("local") if isinstance(i, dict) else i for i in root.get("include", [])]
    for f in files:
        if not any(inc == f or (inc and re.fullmatch(inc.replace(".", r"\.").replace("*", "[^/]*"), f)) for inc in includes):
            fail(where, f"{f} is not included")
    wf = " ".join(str(r.get("if", "")) for r in root.get("workflow", {}).get("rules", []))
    for need in ('$CI_PIPELINE_SOURCE == "merge_request_event"', "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "$CI_COMMIT_TAG"):
        if need not in wf:
            fail(where, f"workflow rules run no pipeline for {need}")

    defs = {k: v for k, v in root.items() if k not in CI_KEYWORDS}
    for f in files:
        for k, v in load_yaml(f).items():
            if k in CI_KEYWORDS:
                fail(f, f"sets the global `{k}`: only .gitlab-ci.yml may")
            elif k in defs:
                fail(f, f"defines {k} again")
            else:
                defs[k] = v

    def resolved(name, seen=()):
        job = defs[name]
        ext = job.get("extends", [])
        out = {}
        for parent in [ext] if isinstance(ext, str) else ext:
            if parent in seen or parent not in defs:
                fail("gitlab-ci", f"{name} extends unknown or cyclic {parent}")
                continue
            out = merge(out, resolved(parent, seen + (name,)))
        return merge(out, {k: v for k, v in job.items() if k != "extends"})

    jobs = {n: resolved(n) for n in defs if not n.startswith(".")}
    xtask_calls = []
    for name, job in sorted(jobs.items()):
        if job.get("stage") not in CI_STAGES:
            fail("gitlab-ci", f"{name}: stage {job.get('stage')!r} is not one of {CI_STAGES}")
        script = ci_script(job)
        for line in script:
            if CI_FORBIDDEN.search(line):
                fail("gitlab-ci", f"{name}: `{line}` does directly what a `cargo xtask` command does")
            elif line.startswith("cargo ") and not line.startswith("cargo xtask ") and \
                    not any(re.match(r, line) for r in CI_DIRECT):
                fail("gitlab-ci", f"{name}: `{line}` is neither `cargo xtask ...` nor a tool CI runs itself")
            if line.startswith("cargo xtask "):
                xtask_calls.append((name, line))
        if any(l.startswith("cargo ") for l in script):
            keys = [c.get("key", {}) for c in (job.get("cache") or [])]
            if not any(isinstance(k, dict) and "Cargo.lock" in k.get("files", []) for k in keys):
                fail("gitlab-ci", f"{name} runs cargo without the cargo cache keyed on Cargo.lock")

    def jobs_running(prefix):
        return [n for n, line in xtask_calls if line.startswith(prefix)]

    for prefix in ("cargo xtask test", "cargo xtask build", "cargo xtask deploy dev",
                   "cargo xtask promote --from dev --to prod", "cargo xtask rollback --env prod"):
        if not jobs_running(prefix):
            fail("gitlab-ci", f"no job runs `{prefix}`")
    for name in jobs_running("cargo xtask deploy dev"):
        job = jobs[name]
        rules = job.get("rules", [])
        if job.get("environment", {}).get("name") != "dev" or \
                [r.get("if") for r in rules] != ["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"] or \
                any(r.get("when") == "manual" for r in rules):
            fail("gitlab-ci", f"{name}: deploy dev runs by itself on main only, in environment dev")
    for name in jobs_running("cargo xtask promote") + jobs_running("cargo xtask rollback --env prod"):
        job = jobs[name]
        rules = [r for r in job.get("rules", []) if r.get("when") != "never"]
        if job.get("environment", {}).get("name") != "prod" or not rules or \
                any(r.get("when") != "manual" for r in rules):
            fail("gitlab-ci", f"{name}: promotion and rollback of prod are manual jobs in environment prod")
    notify = {n: j for n, j in jobs.items() if j.get("stage") == "notify"}
    whens = {r.get("when") for j in notify.values() for r in j.get("rules", [])}
    if not {"on_success", "on_failure"} <= whens:
        fail("gitlab-ci", "the notify stage must send a message on success and on failure")
    for name, job in notify.items():
        text = " ".join(ci_script(job))
        if "curl" not in text or "$NOTIFY_WEBHOOK_URL" not in text:
            fail("gitlab-ci", f"{name}: the message goes by curl to $NOTIFY_WEBHOOK_URL (a CI variable)")
    cov = [n for n, j in jobs.items() if any(l.startswith("cargo llvm-cov ") for l in ci_script(j))]
    if not cov or not all(jobs[n].get("artifacts", {}).get("reports", {}).get("coverage_report") for n in cov):
        fail("gitlab-ci", "no coverage job (cargo-llvm-cov) publishing a coverage_report")
    if not [n for n, j in jobs.items() if any(l.startswith("cargo deny ") and "advisories" in l for l in ci_script(j))]:
        fail("gitlab-ci", "no cargo-deny job checking advisories")
    return len(jobs)


# ---------------------------------------------------------------- schema and behaviour cases

# (what, overlay, text the error must contain): each must fail to render.
NEGATIVE = [
    ("a `latest` image tag", {"image": {"tag": "latest"}}, "/image/tag"),
    ("a mutable version tag", {"image": {"tag": "v1.2.3"}}, "/image/tag"),
    ("plain-text Redis", {"redis": {"clusterNodes": ["redis://cache:6379"]}}, "/redis/clusterNodes/0"),
    ("a brace in KEY_PREFIX", {"config": {"keyPrefix": "a{b}"}}, "/config/keyPrefix"),
    ("an unknown LOG_FORMAT", {"config": {"logFormat": "xml"}}, "/config/logFormat"),
    ("a tick above 250 ms", {"config": {"admissionTickMs": 500}}, "/config/admissionTickMs"),
    ("the ALB's 60 s idle timeout", {"ingress": {"idleTimeoutSeconds": 60}}, "/ingress/idleTimeoutSeconds"),
    ("a writable root filesystem", {"securityContext": {"readOnlyRootFilesystem": False}}, "/securityContext/readOnlyRootFilesystem"),
    ("running as root", {"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    ("a misspelt value", {"autoscalling": {"enabled": True}}, "autoscalling"),
    ("no token key", {"tokenKeys": {"keys": []}}, "/tokenKeys/keys"),
    ("a non-IAM role ARN", {"serviceAccount": {"roleArn": "tickets-dev-admission"}}, "/serviceAccount/roleArn"),
    ("min replicas above max", {"autoscaling": {"minReplicas": 20, "maxReplicas": 10}}, "autoscaling.minReplicas"),
    ("a grace period shorter than the preStop sleep", {"terminationGracePeriodSeconds": 25}, "terminationGracePeriodSeconds"),
    ("a duplicate key id", {"tokenKeys": {"keys": [{"kid": "a", "file": "a.pem"}, {"kid": "a", "file": "b.pem"}]}}, "appears twice"),
    ("no image tag", {"image": {"tag": ""}}, "image.tag is required"),
    ("a database connection that may fall back to plain text", {"database": {"tls": {"mode": "PREFERRED"}}}, "/database/tls/mode"),
    ("certificate checks without a CA", {"database": {"tls": {"mode": "VERIFY_IDENTITY"}}}, "database.tls.caSecret"),
]


def check_negative(chart, base, ns, release):
    for what, overlay, expected in NEGATIVE:
        try:
            render(chart, merge(base, overlay), ns, release)
            fail("values.schema.json", f"{what} rendered without an error")
        except (helm_python.HelmValuesError, helm_python.HelmRenderError) as e:
            if expected not in str(e):
                fail("values.schema.json", f"{what} failed, but not on {expected!r}: {str(e).strip()[:300]}")


def check_pdb_rule(chart, base, ns, release):
    """A PodDisruptionBudget only when more than one replica runs."""
    cases = [
        ("one fixed replica", {"autoscaling": {"enabled": False}, "replicaCount": 1}, False),
        ("two fixed replicas", {"autoscaling": {"enabled": False}, "replicaCount": 2}, True),
        ("an HPA from one replica", {"autoscaling": {"minReplicas": 1}}, False),
        ("an HPA from two replicas", {"autoscaling": {"minReplicas": 2}}, True),
        ("KEDA from one replica", {"keda": {"enabled": True}, "autoscaling": {"minReplicas": 1}}, False),
    ]
    for what, overlay, want in cases:
        docs = docs_of(render(chart, merge(base, overlay), ns, release))
        if bool(find(docs, "PodDisruptionBudget")) != want:
            fail("templates/pdb.yaml", f"with {what} a PodDisruptionBudget {'is missing' if want else 'was rendered'}")
        if find(docs, "HorizontalPodAutoscaler") and find(docs, "ScaledObject"):
            fail("templates/hpa.yaml", f"with {what} both an HPA and a ScaledObject were rendered")


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--app-env", required=True, help="comma-separated env var names of app/src/config.rs")
    args = p.parse_args()
    app_env = [n for n in args.app_env.split(",") if n]
    os.makedirs(args.out, exist_ok=True)

    chart = helm_python.Chart.load(CHART)
    kube = {env: kube_version_of(env) for env in ENVS}
    step(f"helm {helm_python.helm_sdk_version()}: chart {chart.name}-{chart.version}, Kubernetes "
         + ", ".join(f"{v} ({env})" for env, v in kube.items()) + " as terraform/envs/<env> runs it")
    envs = {env: tomllib.load(open(f"environments/{env}.toml", "rb")) for env in ENVS}
    sets = {}
    pending = {}
    for env in ENVS:
        raw = load_yaml(f"{CHART}/values-{env}.yaml")
        k = envs[env]["kubernetes"]
        pending[env] = check_placeholders_refused(chart, env, raw, k["namespace"], k["release"])
        # Every other check sees the values as they will be once set.
        sets[env] = (env, filled(raw))
    sets["all-features"] = ("dev", merge(sets["dev"][1], load_yaml(f"{CHART}/{ALL_FEATURES}")))

    for name, (env, values) in sets.items():
        k = envs[env]["kubernetes"]
        report = helm_python.lint(CHART, values, namespace=k["namespace"], kube_version=f"v{kube[env]}")
        for m in report["messages"]:
            if m["severity"] >= 2:
                fail(f"helm lint ({name})", f"{m['path']}: {m['error'].strip()}")
        try:
            rendered = render(chart, values, k["namespace"], k["release"])
        except helm_python.HelmError as e:
            fail(f"render ({name})", str(e).strip())
            continue
        docs = docs_of(rendered)
        out_dir = os.path.join(args.out, name)
        write_set(out_dir, docs)
        for template, doc in docs:
            validate_manifest(f"{name}: {template} {doc['kind']}/{doc['metadata']['name']}", doc, kube[env])
        exprs = write_promql(out_dir, docs)
        write_bootstrap(out_dir, docs, name)
        kinds = sorted({d["kind"] for _, d in docs})
        step(f"{name}: linted, rendered {len(docs)} manifests ({', '.join(kinds)}), validated; {exprs} PromQL expressions")
        if name in ENVS:
            check_environment(env, envs[env], chart.merge_values(values), docs, app_env)
            if values.get("eventLog", {}).get("alerts"):
                fail(name, "eventLog.alerts is on, but the app does not export the event log's metrics yet")

    all_features = sets["all-features"][1]
    all_docs = docs_of(render(chart, all_features, envs["dev"]["kubernetes"]["namespace"],
                              envs["dev"]["kubernetes"]["release"]))
    all_features = chart.merge_values(all_features)
    check_database_tls("all-features", all_docs, all_features)
    if all_features["database"]["tls"]["mode"] != "VERIFY_IDENTITY":
        fail(ALL_FEATURES, "database.tls.mode must be VERIFY_IDENTITY here, so that its CA mounts are checked")
    before = len(failures)
    check_key_mounts("all-features", all_docs, "TOKEN_KEYS", all_features["tokenKeys"]["secretName"], 2)
    check_key_mounts("all-features", all_docs, "IDENTITY_KEYS", all_features["identityKeys"]["secretName"],
                     len(all_features["identityKeys"]["keys"]))
    if len(failures) == before:
        step("all-features: two TOKEN_KEYS during a rotation and the IDENTITY_KEYS, each a mounted Secret file")
    before = len(failures)
    n = check_docs_database_tls()
    if len(failures) == before:
        step(f"database URLs require TLS: the ExternalSecrets' and {n} in docs/deploy.md")
    base_env = envs["dev"]["kubernetes"]
    before = len(failures)
    check_negative(chart, sets["dev"][1], base_env["namespace"], base_env["release"])
    if len(failures) == before:
        step(f"values.schema.json and the template rules refused all {len(NEGATIVE)} bad values")
    before = len(failures)
    check_pdb_rule(chart, sets["dev"][1], base_env["namespace"], base_env["release"])
    if len(failures) == before:
        step("PodDisruptionBudget only with more than one replica; never both HPA and ScaledObject")
    for env in ENVS:
        pending[env] += check_addons(env, envs[env])
        check_autoscaler_version(env, kube[env])
        before = len(failures)
        n = check_argocd(env, envs[env], kube[env])
        if len(failures) == before:
            step(f"{env}: {n} ArgoCD Applications point at existing paths and values; add-on values agree with environments/{env}.toml")

    before = len(failures)
    check_dockerfile(chart.merge_values(sets["prod"][1]))
    if len(failures) == before:
        step("app/Dockerfile: multi-stage; the last stage non-root as the chart runs it, with CA certificates")
    before = len(failures)
    check_values_comments()
    if len(failures) == before:
        step("values.yaml: every value has a comment")
    before = len(failures)
    n = check_gitlab_ci()
    if len(failures) == before:
        step(f"GitLab CI: {n} jobs in stages {', '.join(CI_STAGES)}; xtask for what xtask does; deploy dev on main, "
             "prod promotion and rollback manual; notify on success and failure; cargo cache")
    for env in ENVS:
        if pending[env]:
            step(f"{env}: {len(pending[env])} values wait for the first terraform apply (docs/deploy.md, step 4), "
                 f"and the chart refuses to render its own until they are set: {', '.join(pending[env])}")
        else:
            step(f"{env}: no placeholders left")

    if failures:
        print(f"helm_check: {len(failures)} problem(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
