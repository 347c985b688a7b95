"""Checks the deployment examples against the gateway's contract.

The schema validators prove each file is well formed; this script proves the
files agree with the gateway and with each other: the stop timeout covers the
shutdown grace, probes hit the private listener, the configuration is mounted
as a whole directory, the ServiceMonitor scrapes only the metrics port, and the
image runs the binary the build produces, as a non-root user.

Usage: contract_check.py {systemd|kubernetes|kubernetes-replicas|containerfile|nginx|caddy} EXAMPLES_DIR
Prints one line per problem and exits 1 when there is any.
"""

import fnmatch
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

DEFAULT_SHUTDOWN_GRACE_SECONDS = 20
DEFAULT_DRAIN_DELAY_SECONDS = 5
METRICS_PORT = 9464
UPSTREAM_DEADLINE_SECONDS = 30
BODY_LIMIT_BYTES = 1024 * 1024
# Paths a proxy must hand to the gateway, and the one it must never route.
PUBLIC_PATHS = ["/health", "/openapi.json", "/endpoint/docs/openapi.json", "/endpoint/docs/pages"]
PRIVATE_PATH = "/metrics"


def flag_value(args, name):
    """The value of --name=VALUE or --name VALUE in an argument list, else None."""
    for index, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and index + 1 < len(args):
            return args[index + 1]
    return None


def shutdown_grace(args):
    value = flag_value(args, "shutdown-grace")
    return int(value) if value is not None else DEFAULT_SHUTDOWN_GRACE_SECONDS


def drain_delay(args):
    value = flag_value(args, "drain-delay")
    return int(value) if value is not None else DEFAULT_DRAIN_DELAY_SECONDS


def seconds(text):
    """systemd time span in seconds ("30", "30s", "1min 30s")."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0
    for number, unit in re.findall(r"(\d+)\s*([a-z]*)", text):
        if unit not in units:
            raise ValueError(f"unknown time unit {unit!r}")
        total += int(number) * units[unit]
    return total


def check_systemd(root):
    problems = []
    text = (root / "systemd" / "conflagent.service").read_text()
    text = text.replace("\\\n", " ")
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    exec_start = shlex.split(settings.get("ExecStart", [""])[-1])
    if exec_start[1:2] != ["serve"]:
        problems.append("ExecStart does not run `conflagent serve`")
    grace = drain_delay(exec_start) + shutdown_grace(exec_start)
    stop = settings.get("TimeoutStopSec")
    if stop is None or seconds(stop[-1]) <= grace:
        problems.append(f"TimeoutStopSec must exceed drain delay + shutdown grace ({grace} s)")
    for key, expected in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict")]:
        if settings.get(key, [""])[-1] != expected:
            problems.append(f"{key} must be {expected}")
    if settings.get("User", ["root"])[-1] in ("", "root", "0"):
        problems.append("User must be a dedicated account, not root")
    config_dir = flag_value(exec_start, "config-dir") or "config.d"
    for path in " ".join(settings.get("ReadWritePaths", [])).split():
        if config_dir.startswith(path.lstrip("-+")):
            problems.append(f"ReadWritePaths {path} makes the configuration writable")
    return problems


def load_all(path):
    with open(path) as file:
        return [doc for doc in yaml.safe_load_all(file) if doc]


def load_dir(directory):
    resources = []
    for path in sorted(directory.glob("*.yaml")):
        resources.extend(load_all(path))
    return resources


def is_gateway(resource):
    return resource["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "conflagent"


def check_kubernetes(root):
    return check_kubernetes_resources(load_dir(root / "kubernetes"))


def check_kubernetes_resources(resources):
    problems = []

    def of_kind(kind):
        return [r for r in resources if r.get("kind") == kind]

    deployments = [d for d in of_kind("Deployment") if is_gateway(d)]
    if len(deployments) != 1:
        return [f"expected one gateway Deployment, found {len(deployments)}"]
    pod = deployments[0]["spec"]["template"]["spec"]
    pod_labels = deployments[0]["spec"]["template"]["metadata"].get("labels", {})
    container = pod["containers"][0]
    args = container.get("args", [])
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    metrics_listen = flag_value(args, "metrics-listen") or f"127.0.0.1:{METRICS_PORT}"
    metrics_port = int(metrics_listen.rsplit(":", 1)[1])
    listen = flag_value(args, "listen") or "127.0.0.1:8080"
    if metrics_listen.startswith("127.") or listen.startswith("127."):
        problems.append("listeners bound to loopback are unreachable from other pods")
    if ports.get("metrics") != metrics_port:
        problems.append(f"container port 'metrics' must be {metrics_port} (--metrics-listen)")

    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("metrics", metrics_port):
            problems.append(f"{probe} must GET {path} on the metrics port")

    pre_stop = (
        container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    )
    needed = pre_stop + drain_delay(args) + shutdown_grace(args)
    if pod.get("terminationGracePeriodSeconds", 30) <= needed:
        problems.append(
            "terminationGracePeriodSeconds must exceed preStop + drain delay + shutdown grace "
            f"({needed} s)"
        )

    security = container.get("securityContext", {})
    if not pod.get("securityContext", {}).get("runAsNonRoot") and not security.get("runAsNonRoot"):
        problems.append("runAsNonRoot must be true")
    if not security.get("readOnlyRootFilesystem"):
        problems.append("readOnlyRootFilesystem must be true")
    if not container.get("resources", {}).get("requests"):
        problems.append("the container needs resource requests")

    config_dir = flag_value(args, "config-dir") or "config.d"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounted = False
    for mount in container.get("volumeMounts", []):
        if "subPath" in mount or "subPathExpr" in mount:
            problems.append(f"volumeMount {mount['name']} uses subPath, which never updates")
        if mount["mountPath"].rstrip("/") == config_dir.rstrip("/"):
            mounted = True
            volume = volumes.get(mount["name"], {})
            if "secret" not in volume and "configMap" not in volume:
                problems.append("the config directory must be a Secret or ConfigMap volume")
    if not mounted:
        problems.append(f"nothing is mounted at --config-dir {config_dir}")

    def selects_pod(service):
        selector = service["spec"].get("selector", {})
        return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())

    def exposes_metrics(service_port):
        target = service_port.get("targetPort", service_port.get("port"))
        return target in ("metrics", metrics_port)

    services = [s for s in of_kind("Service") if selects_pod(s)]
    if not services:
        problems.append("no Service selects the gateway pods")
    for ingress in of_kind("Ingress"):
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"]["service"]
                if path["path"].startswith("/metrics"):
                    problems.append("the Ingress routes /metrics")
                for service in services:
                    if service["metadata"]["name"] != backend["name"]:
                        continue
                    if any(exposes_metrics(p) for p in service["spec"]["ports"]):
                        problems.append(
                            f"Service {backend['name']} behind the Ingress carries the metrics port"
                        )

    monitors = of_kind("ServiceMonitor")
    if len(monitors) != 1:
        problems.append(f"expected one ServiceMonitor, found {len(monitors)}")
    for monitor in monitors:
        if monitor.get("apiVersion") != "monitoring.coreos.com/v1":
            problems.append("ServiceMonitor apiVersion must be monitoring.coreos.com/v1")
        match = monitor["spec"].get("selector", {}).get("matchLabels", {})
        chosen = [
            s
            for s in services
            if match and all(s["metadata"].get("labels", {}).get(k) == v for k, v in match.items())
        ]
        if not chosen:
            problems.append("the ServiceMonitor selects no Service of the gateway")
        endpoints = monitor["spec"].get("endpoints", [])
        if not endpoints:
            problems.append("the ServiceMonitor has no endpoints")
        for endpoint in endpoints:
            if endpoint.get("path", "/metrics") != "/metrics":
                problems.append("the ServiceMonitor must scrape /metrics")
            for service in chosen:
                by_name = {p.get("name"): p for p in service["spec"]["ports"]}
                port = by_name.get(endpoint.get("port"))
                if port is None or not exposes_metrics(port):
                    problems.append(
                        f"ServiceMonitor port {endpoint.get('port')!r} is not the metrics port "
                        f"of Service {service['metadata']['name']}"
                    )

    policies = of_kind("NetworkPolicy")
    if not policies:
        problems.append("no NetworkPolicy protects the metrics port")
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            rule_ports = [p.get("port") for p in rule.get("ports", [])]
            opens_metrics = not rule_ports or any(
                p in ("metrics", metrics_port) for p in rule_ports
            )
            sources = rule.get("from", [])
            if opens_metrics and (not sources or any("ipBlock" in s for s in sources)):
                problems.append("a NetworkPolicy rule opens the metrics port beyond the cluster")
    return problems


def check_kubernetes_replicas(root):
    """The replicas variant: the base directory with the variant's resources applied over it (same
    kind and name replaced), checked like the base, plus what sharing budgets through Redis needs."""
    variant = load_dir(root / "kubernetes" / "replicas")

    def key(resource):
        return (resource.get("kind"), resource["metadata"]["name"])

    replaced = {key(r) for r in variant}
    resources = [r for r in load_dir(root / "kubernetes") if key(r) not in replaced] + variant
    problems = check_kubernetes_resources(resources)
    if problems:
        return problems

    def of_kind(kind):
        return [r for r in resources if r.get("kind") == kind]

    def selects(selector, labels):
        match = selector.get("matchLabels", {})
        return bool(match) and all(labels.get(k) == v for k, v in match.items())

    deployment = next(d for d in of_kind("Deployment") if is_gateway(d))
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if deployment["spec"].get("replicas", 1) < 2:
        problems.append("the replicas variant must run more than one replica")

    args = container.get("args", [])
    if flag_value(args, "redis-url") is not None:
        problems.append("--redis-url in the arguments would show its password; use the Secret")
    env = {e["name"]: e for e in container.get("env", [])}
    url_ref = env.get("CONFLAGENT_REDIS_URL", {}).get("valueFrom", {}).get("secretKeyRef")
    if not url_ref:
        problems.append("CONFLAGENT_REDIS_URL must come from a Secret (secretKeyRef)")
        return problems
    secrets = {s["metadata"]["name"]: s for s in of_kind("Secret")}
    secret = secrets.get(url_ref["name"])
    if secret is None or url_ref["key"] not in secret.get("stringData", {}):
        problems.append(f"Secret {url_ref['name']} has no key {url_ref['key']}")
        return problems
    url = secret["stringData"][url_ref["key"]]
    match = re.fullmatch(r"rediss?://(?:[^:@/]*:([^@/]*)@)?([^:/]+)(?::(\d+))?(?:/\d+)?", url)
    if not match:
        return problems + [f"the Redis URL in Secret {url_ref['name']} is not redis:// or rediss://"]
    password, host, port = match.group(1), match.group(2), int(match.group(3) or 6379)
    if not password:
        problems.append("the Redis URL carries no password")
    if "password" in secret.get("stringData", {}) and secret["stringData"]["password"] != password:
        problems.append("the password in the Redis URL differs from the Secret's password")

    service = next((s for s in of_kind("Service") if s["metadata"]["name"] == host), None)
    if service is None:
        problems.append(f"no Service named {host}, the Redis URL's host")
        return problems
    service_port = next((p for p in service["spec"]["ports"] if p["port"] == port), None)
    if service_port is None:
        problems.append(f"Service {host} has no port {port}")
    redis = [
        d
        for d in of_kind("Deployment")
        if selects({"matchLabels": service["spec"].get("selector", {})},
                   d["spec"]["template"]["metadata"].get("labels", {}))
    ]
    if len(redis) != 1:
        problems.append(f"Service {host} selects {len(redis)} Deployments, expected the Redis one")
    else:
        redis_pod = redis[0]["spec"]["template"]["spec"]
        redis_container = redis_pod["containers"][0]
        redis_ports = {p.get("name"): p["containerPort"] for p in redis_container.get("ports", [])}
        target = service_port.get("targetPort", port) if service_port else None
        if target not in redis_ports and target not in redis_ports.values():
            problems.append(f"Service {host} targets no port of the Redis container")
        redis_env = {e["name"]: e for e in redis_container.get("env", [])}
        redis_args = redis_container.get("args", []) + redis_container.get("command", [])
        if "--requirepass" not in redis_args:
            problems.append("the Redis server must require the password (--requirepass)")
        else:
            value = redis_args[redis_args.index("--requirepass") + 1]
            variable = re.fullmatch(r"\$\((\w+)\)", value)
            ref = redis_env.get(variable.group(1), {}).get("valueFrom", {}).get("secretKeyRef") if variable else None
            if not ref or ref.get("name") != url_ref["name"]:
                problems.append("--requirepass must come from the Redis Secret through the environment")
        if not redis_container.get("securityContext", {}).get("readOnlyRootFilesystem"):
            problems.append("the Redis container needs readOnlyRootFilesystem")

    terms = (
        pod.get("affinity", {}).get("podAntiAffinity", {})
    )
    anti = [t.get("podAffinityTerm", t) for t in
            terms.get("preferredDuringSchedulingIgnoredDuringExecution", [])
            + terms.get("requiredDuringSchedulingIgnoredDuringExecution", [])]
    if not any(t.get("topologyKey") and selects(t.get("labelSelector", {}), pod_labels) for t in anti):
        problems.append("the gateway pods need a pod anti-affinity on their own labels")

    budgets = [b for b in of_kind("PodDisruptionBudget") if selects(b["spec"].get("selector", {}), pod_labels)]
    if len(budgets) != 1:
        problems.append(f"expected one PodDisruptionBudget for the gateway pods, found {len(budgets)}")
    else:
        spec = budgets[0]["spec"]
        replicas = deployment["spec"]["replicas"]
        if "maxUnavailable" in spec:
            allowed = spec["maxUnavailable"]
        else:
            allowed = replicas - spec.get("minAvailable", replicas)
        if not isinstance(allowed, int) or not 0 < allowed < replicas:
            problems.append("the PodDisruptionBudget must let one replica go and keep the others")

    policies = of_kind("NetworkPolicy")
    reaches_redis = any(
        selects(p["spec"]["podSelector"], pod_labels)
        and any(
            any(selects(to.get("podSelector", {}), redis[0]["spec"]["template"]["metadata"]["labels"])
                for to in rule.get("to", []))
            and any(p.get("port") in (port, "redis") for p in rule.get("ports", []))
            for rule in p["spec"].get("egress", [])
        )
        for p in policies
    ) if len(redis) == 1 else False
    if not reaches_redis:
        problems.append("no NetworkPolicy lets the gateway pods reach Redis")
    return problems


def check_containerfile(root):
    problems = []
    text = (root / "Containerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    stages = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    if len(stages) < 2:
        problems.append("expected a multi-stage build")
        return problems
    if not re.search(r"cargo build --release --locked\b", text):
        problems.append("the build stage must run `cargo build --release --locked`")
    if "target/release/conflagent" not in text:
        problems.append("nothing takes the binary from target/release/conflagent")
    final = lines[stages[-1] :]
    copies = [shlex.split(line) for line in final if line.upper().startswith("COPY --FROM=")]
    users = [line.split(None, 1)[1] for line in final if line.upper().startswith("USER ")]
    entry = [line.split(None, 1)[1] for line in final if line.upper().startswith("ENTRYPOINT ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the runtime stage must switch to a non-root USER")
    if not entry:
        problems.append("the runtime stage has no ENTRYPOINT")
    else:
        binary = yaml.safe_load(entry[-1])[0]
        if not any(copy[-1] == binary for copy in copies):
            problems.append(f"ENTRYPOINT {binary} is not copied from the build stage")
    return problems


def nginx_blocks(text):
    """nginx configuration as nested (name, args, children) tuples."""
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|[{};]|[^\s{};]+', re.sub(r"#[^\n]*", "", text))
    root, stack, words = [], [], []
    current = root
    for token in tokens:
        if token == ";":
            current.append((words[0], words[1:], None))
            words = []
        elif token == "{":
            block = (words[0], words[1:], [])
            current.append(block)
            stack.append(current)
            current, words = block[2], []
        elif token == "}":
            current = stack.pop()
        else:
            words.append(token.strip("\"'"))
    if stack or words:
        raise ValueError("unbalanced braces or a directive without ';'")
    return root


def nginx_size(text):
    units = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024**3}
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", text.lower()).groups()
    return int(number) * units[unit]


def nginx_seconds(text):
    units = {"": 1, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh]?)", text))


def nginx_location_for(server, uri):
    """The location block nginx picks for uri (exact, then longest prefix)."""
    locations = [c for c in server if c[0] == "location"]
    for _, args, children in locations:
        if args[0] == "=" and args[1] == uri:
            return args, children
    prefixes = [
        (args[-1], args, children)
        for _, args, children in locations
        if len(args) == 1 or args[0] == "^~"
    ]
    if any(args[0] in ("~", "~*") for _, args, _ in locations):
        raise ValueError("regex locations are not supported by this check")
    matching = [p for p in prefixes if uri.startswith(p[0])]
    if not matching:
        return None, []
    _, args, children = max(matching, key=lambda p: len(p[0]))
    return args, children


def directive(blocks, name):
    values = [args for block_name, args, children in blocks if block_name == name]
    return values[-1] if values else None


def check_nginx(root):
    problems = []
    servers = [b for b in nginx_blocks((root / "nginx" / "conflagent.conf").read_text()) if b[0] == "server"]
    https = [s[2] for s in servers if any("ssl" in args for name, args, _ in s[2] if name == "listen")]
    plain = [s[2] for s in servers if s[2] not in https]
    if not https:
        return ["no server listens with ssl"]
    for server in plain:
        _, children = nginx_location_for(server, "/endpoint/docs/pages")
        target = directive(children, "return") or directive(server, "return") or []
        if not (target[:1] == ["301"] or target[:1] == ["308"]) or not target[-1].startswith("https://"):
            problems.append("plain HTTP is not redirected to https://")
    for server in https:
        for uri in PUBLIC_PATHS + [PRIVATE_PATH]:
            args, children = nginx_location_for(server, uri)
            proxied = directive(children, "proxy_pass") is not None
            if uri == PRIVATE_PATH and proxied:
                problems.append(f"{uri} is routed to the gateway (location {' '.join(args)})")
            if uri != PRIVATE_PATH and not proxied:
                problems.append(f"{uri} is not routed to the gateway")
            if uri == PRIVATE_PATH or not proxied:
                continue
            read_timeout = directive(children, "proxy_read_timeout") or directive(server, "proxy_read_timeout")
            if read_timeout is None or nginx_seconds(read_timeout[0]) <= UPSTREAM_DEADLINE_SECONDS:
                problems.append(f"{uri}: proxy_read_timeout must exceed {UPSTREAM_DEADLINE_SECONDS} s")
            body = directive(children, "client_max_body_size") or directive(server, "client_max_body_size")
            if body is None or not 0 < nginx_size(body[0]) <= BODY_LIMIT_BYTES:
                problems.append(f"{uri}: client_max_body_size must be at most 1m")
            # A location with any proxy_set_header of its own inherits none
            # from the server block.
            own = [args for name, args, _ in children if name == "proxy_set_header"]
            inherited = [args for name, args, _ in server if name == "proxy_set_header"]
            headers = {args[0].lower(): args[1] for args in (own or inherited)}
            for header in ("x-forwarded-proto", "x-forwarded-host"):
                if header not in headers:
                    problems.append(f"{uri}: proxy_set_header {header} is missing")
    return sorted(set(problems))


def caddy_routes(node, path_matchers, found):
    """Collects (enclosing path matcher lists, handler list) for each reverse_proxy."""
    if isinstance(node, dict):
        matchers = path_matchers
        if "match" in node and "handle" in node:
            paths = [p for m in node["match"] for p in m.get("path", [])]
            if paths:
                matchers = path_matchers + [paths]
        if isinstance(node.get("handle"), list):
            for handler in node["handle"]:
                if handler.get("handler") == "reverse_proxy":
                    found.append((matchers, node["handle"], handler))
        for value in node.values():
            caddy_routes(value, matchers, found)
    elif isinstance(node, list):
        for value in node:
            caddy_routes(value, path_matchers, found)
    return found


def caddy_path_matches(pattern, path):
    return fnmatch.fnmatchcase(path, pattern)


def check_caddy(root):
    problems = []
    adapted = subprocess.run(
        ["caddy", "adapt", "--adapter", "caddyfile", "--config", str(root / "caddy" / "Caddyfile")],
        capture_output=True,
        text=True,
    )
    if adapted.returncode != 0:
        return ["caddy adapt failed: " + adapted.stderr.strip().splitlines()[-1]]
    config = json.loads(adapted.stdout)
    proxies = caddy_routes(config, [], [])
    if not proxies:
        return ["no reverse_proxy"]

    def routed(matchers, path):
        return all(any(caddy_path_matches(p, path) for p in paths) for paths in matchers)

    for matchers, handlers, proxy in proxies:
        if routed(matchers, PRIVATE_PATH):
            problems.append(f"{PRIVATE_PATH} is routed to the gateway")
        timeout = proxy.get("transport", {}).get("response_header_timeout", 0) / 1e9
        if timeout <= UPSTREAM_DEADLINE_SECONDS:
            problems.append(f"response_header_timeout must exceed {UPSTREAM_DEADLINE_SECONDS} s")
        limits = [h.get("max_size", 0) for h in handlers if h.get("handler") == "request_body"]
        if not limits or not 0 < limits[0] <= BODY_LIMIT_BYTES:
            problems.append("request_body max_size must be at most 1MiB before the proxy")
        deleted = {h.lower() for h in proxy.get("headers", {}).get("request", {}).get("delete", [])}
        if deleted & {"x-forwarded-proto", "x-forwarded-host"}:
            problems.append("the forwarded headers are deleted")
    for path in PUBLIC_PATHS:
        if not any(routed(matchers, path) for matchers, _, _ in proxies):
            problems.append(f"{path} is not routed to the gateway")
    return problems


CHECKS = {
    "systemd": check_systemd,
    "kubernetes": check_kubernetes,
    "kubernetes-replicas": check_kubernetes_replicas,
    "containerfile": check_containerfile,
    "nginx": check_nginx,
    "caddy": check_caddy,
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in CHECKS:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    try:
        problems = CHECKS[sys.argv[1]](Path(sys.argv[2]))
    except (OSError, AttributeError, KeyError, IndexError, TypeError, ValueError, yaml.YAMLError) as error:
        problems = [f"cannot read the example: {type(error).__name__}: {error}"]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
