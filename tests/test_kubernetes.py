"""Kubernetes manifests, for every combination: the kustomize base and both overlays pass
the strict schema validation, keep the security baseline, probe the health endpoints, run
migrations first and deploy the worker and scheduler; every object is named and labelled
for the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from artifacts import (
    BROKER_PORTS,
    CATALOG_ID_LABEL,
    CONTAINER_PROBES,
    DATABASE_PORTS,
    DNS_LABEL,
    DNS_LABEL_KINDS,
    DNS_SUBDOMAIN,
    IMAGE_UID,
    KUBERNETES_VERSIONS,
    OVERLAYS,
    TEMPLATE_VERSION,
    TEMPLATE_VERSION_LABEL,
    WORKER_GRACE_SECONDS,
    Variant,
    check,
    combinations_of,
    tool,
)

# The port of a collector's OTLP/HTTP receiver, which the services send their traces to.
OTLP_HTTP_PORT = 4318


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_are_valid_kubernetes_in_strict_mode(
    variants, version: str, tmp_path: Path
) -> None:
    # Each distinct object once: most are the same in many combinations (a Service, a
    # NetworkPolicy), and whether an object is valid does not depend on its neighbours.
    distinct = {
        yaml.safe_dump(document, sort_keys=True): None
        for variant in combinations_of(variants)
        for overlay in OVERLAYS
        for document in variant.documents(overlay)
    }
    manifests = tmp_path / "objects.yaml"
    manifests.write_text("---\n".join(distinct))
    result = check([tool("kubernetes-validate"), "--strict", "-k", version, manifests])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # It only warns, and exits 0, on a kind it has no schema for: that is a failure too.
    assert not [line for line in output.splitlines() if not line.startswith("INFO ")], output
    assert output.count(" passed for resource ") == len(distinct)


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for document in documents:
        if document["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]


def test_every_container_keeps_the_security_baseline(variants) -> None:
    problems = []
    for variant in combinations_of(variants):
        for overlay in OVERLAYS:
            for name, pod in pod_specs(variant.documents(overlay)):
                where = f"{variant.name} {overlay} {name}"
                security = pod["securityContext"]
                if not (
                    security.get("runAsNonRoot")
                    and security.get("runAsUser") == IMAGE_UID
                    and security.get("runAsGroup") == IMAGE_UID
                    and security.get("seccompProfile") == {"type": "RuntimeDefault"}
                    and pod.get("automountServiceAccountToken") is False
                ):
                    problems.append(f"{where}: pod security context {security}")
                containers = pod["containers"] + pod.get("initContainers", [])
                for container in containers:
                    problems += container_problems(f"{where}/{container['name']}", container)
                for container in pod["containers"]:
                    probes = {key for key in container if key.endswith("Probe")}
                    expected = CONTAINER_PROBES.get(container["name"])
                    if probes != expected:
                        problems.append(f"{where}/{container['name']}: probes {probes}")
    assert problems == []


def container_problems(where: str, container: dict[str, Any]) -> list[str]:
    problems = []
    security = container.get("securityContext", {})
    expected = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    if {key: security.get(key) for key in expected} != expected:
        problems.append(f"{where}: security context {security}")
    resources = container.get("resources", {})
    for bound in ("requests", "limits"):
        if set(resources.get(bound, {})) != {"cpu", "memory"}:
            problems.append(f"{where}: resource {bound} {resources.get(bound)}")
    # A read-only root filesystem: the servers write temporary files to an emptyDir.
    if "/tmp" not in {mount["mountPath"] for mount in container.get("volumeMounts", [])}:
        problems.append(f"{where}: no writable /tmp")
    return problems


def test_probes_use_the_health_endpoints_on_the_served_port(variants) -> None:
    for variant in combinations_of(variants):
        config = variant.kind("overlays/prod", "ConfigMap")[0]["data"]
        deployment = variant.deployment("overlays/prod", "web")
        web = deployment["spec"]["template"]["spec"]["containers"][0]
        assert web["name"] == "web"
        assert web["args"] == ["serve"]
        ports = {port["name"]: port["containerPort"] for port in web["ports"]}
        assert ports == {"http": int(config["PORT"]), "metrics": int(config["METRICS_PORT"])}
        paths = {
            probe: web[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe")
        }
        assert set(paths.values()) == {"/health/live"}
        assert web["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert all(web[p]["httpGet"]["port"] == "http" for p in ("livenessProbe", "readinessProbe"))


def test_migrations_run_before_a_new_pod_serves(variants) -> None:
    for variant in combinations_of(variants):
        # A worker of a new release may start before any new web pod: it migrates too.
        components = ["web"]
        if variant.has_worker and variant.answers["database"] != "sqlite":
            components.append("worker")
        for component in components:
            deployment = variant.deployment("overlays/prod", component)
            init = deployment["spec"]["template"]["spec"].get("initContainers", [])
            if variant.answers["database"] == "none":
                assert init == []
            else:
                assert [(c["name"], c["args"]) for c in init] == [("migrate", ["migrate"])]


def test_sqlite_runs_one_replica_on_a_volume_and_servers_scale(variants) -> None:
    for variant in combinations_of(variants):
        kinds = {d["kind"] for d in variant.documents("overlays/prod")}
        deployment = variant.deployment("overlays/prod", "web")
        spec = deployment["spec"]
        if variant.answers["database"] == "sqlite":
            assert spec["replicas"] == 1
            assert spec["strategy"]["type"] == "Recreate"
            assert "PersistentVolumeClaim" in kinds
            assert not kinds & {"HorizontalPodAutoscaler", "PodDisruptionBudget"}
            volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
            claim = variant.kind("overlays/prod", "PersistentVolumeClaim")[0]["metadata"]["name"]
            assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim
        else:
            assert "replicas" not in spec  # the autoscaler owns it
            (autoscaler,) = variant.kind("overlays/prod", "HorizontalPodAutoscaler")
            assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
            assert autoscaler["spec"]["minReplicas"] >= 2
            (budget,) = variant.kind("overlays/prod", "PodDisruptionBudget")
            labels = spec["template"]["metadata"]["labels"]
            assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def containers_by_name(variant: Variant, overlay: str) -> dict[str, list[tuple[dict, dict]]]:
    """Each container name of the service's Deployments -> (Deployment, container) pairs."""
    found: dict[str, list[tuple[dict, dict]]] = {}
    for deployment in variant.kind(overlay, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            found.setdefault(container["name"], []).append((deployment, container))
    return found


def test_every_worker_project_deploys_a_worker_and_exactly_one_scheduler(variants) -> None:
    for variant in combinations_of(variants):
        slug = variant.project.name
        containers = containers_by_name(variant, "overlays/prod")
        if not variant.has_worker:
            assert set(containers) == {"web"}, variant.name
            continue
        ((worker_deployment, worker),) = containers["worker"]
        ((scheduler_deployment, scheduler),) = containers["scheduler"]
        assert worker["args"] == ["worker"]
        assert scheduler["args"] == ["scheduler"]
        # The worker serves nothing but its metrics: no HTTP probe, its liveness is its
        # heartbeat. In the web pod its port's name cannot be `metrics`, the web container's.
        config = variant.kind("overlays/prod", "ConfigMap")[0]["data"]
        metrics = "worker-metrics" if variant.answers["database"] == "sqlite" else "metrics"
        ports = {port["name"]: port["containerPort"] for port in worker["ports"]}
        assert ports == {metrics: int(config["WORKER_METRICS_PORT"])}
        assert "ports" not in scheduler
        for probe in ("startupProbe", "livenessProbe"):
            assert worker[probe]["exec"]["command"] == [slug, "worker-health"], probe
        assert worker["livenessProbe"]["periodSeconds"] >= 30
        # The heartbeat file is on the writable /tmp the worker mounts.
        heartbeat = Path(config["WORKER_HEARTBEAT_FILE"])
        assert "/tmp" in {m["mountPath"] for m in worker["volumeMounts"]}
        assert heartbeat.parent == Path("/tmp")
        # SIGTERM lets the worker finish its task: the pod waits long enough.
        pod = worker_deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= WORKER_GRACE_SECONDS
        # Never two schedulers: one replica, and the old pod stops before the new starts.
        spec = scheduler_deployment["spec"]
        assert spec["replicas"] == 1
        assert spec["strategy"] == {"type": "Recreate"}
        targets = {
            a["spec"]["scaleTargetRef"]["name"]
            for a in variant.kind("overlays/prod", "HorizontalPodAutoscaler")
        }
        assert scheduler_deployment["metadata"]["name"] not in targets
        name = scheduler_deployment["metadata"]["name"]
        budgets = [
            b
            for b in variant.kind("overlays/prod", "PodDisruptionBudget")
            if b["spec"]["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        ]
        assert budgets == [], name  # a budget on one replica would block every drain


def test_sqlite_keeps_the_worker_and_scheduler_in_the_web_pod(variants) -> None:
    for variant in combinations_of(variants):
        if not variant.has_worker:
            continue
        containers = containers_by_name(variant, "overlays/prod")
        web = variant.deployment("overlays/prod", "web")
        deployments = {d["metadata"]["name"] for d in variant.kind("overlays/prod", "Deployment")}
        slug = variant.project.name
        if variant.answers["database"] == "sqlite":
            # The file is on a ReadWriteOnce claim: only the web pod can use it.
            assert deployments == {f"{slug}-web"}
            assert [c["name"] for c in web["spec"]["template"]["spec"]["containers"]] == [
                "web",
                "worker",
                "scheduler",
            ]
            for name in ("web", "worker", "scheduler"):
                ((_, container),) = containers[name]
                mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
                assert mounts == {"tmp": "/tmp", "data": "/data"}, name
        else:
            assert deployments == {f"{slug}-web", f"{slug}-worker", f"{slug}-scheduler"}
            for component in ("worker", "scheduler"):
                deployment = variant.deployment("overlays/prod", component)
                labels = deployment["spec"]["template"]["metadata"]["labels"]
                assert labels["app.kubernetes.io/component"] == component
                assert labels["app.kubernetes.io/name"] == slug
                pod = deployment["spec"]["template"]["spec"]
                assert [c["name"] for c in pod["containers"]] == [component]
                assert "data" not in {v["name"] for v in pod["volumes"]}
                assert pod["serviceAccountName"] == slug


# The peer a NetworkPolicy admits to the metrics ports: Prometheus's namespace.
MONITORING_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, and matchExpressions with In) matches labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_network_policies_let_each_pod_reach_only_what_it_uses(variants) -> None:
    for variant in combinations_of(variants):
        policies = variant.kind("overlays/prod", "NetworkPolicy")
        database = variant.answers["database"]
        # DNS, and the traces' collector (OTLP/HTTP).
        expected = {("UDP", 53), ("TCP", 53), ("TCP", OTLP_HTTP_PORT)}
        if database in DATABASE_PORTS:
            expected.add(("TCP", DATABASE_PORTS[database]))
        if variant.has_worker:
            # The web service queues tasks and checks the broker; the worker consumes them.
            expected.add(("TCP", BROKER_PORTS[variant.answers["broker"]]))
        for deployment in variant.kind("overlays/prod", "Deployment"):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            where = f"{variant.name} {deployment['metadata']['name']}"
            (policy,) = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
            spec = policy["spec"]
            assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, where
            # Every egress rule is by port, to anywhere: a rule without ports allows all.
            assert all(rule.get("ports") for rule in spec["egress"]), where
            allowed = {(p["protocol"], p["port"]) for r in spec["egress"] for p in r["ports"]}
            assert allowed == expected, where
            # From anywhere: the API's port; from the monitoring namespace alone: the
            # metrics ports of the pod's containers. Every rule names its ports (one without
            # allows all), by name: a port the pod lacks (the scheduler shares the worker's
            # policy) admits nothing to it.
            assert all(rule.get("ports") for rule in spec["ingress"]), where
            pod = deployment["spec"]["template"]["spec"]
            names = {port["name"] for c in pod["containers"] for port in c.get("ports", [])}
            ingress = {
                (port["port"], yaml.safe_dump(rule.get("from")))
                for rule in spec["ingress"]
                for port in rule["ports"]
                if port["port"] in names
            }
            expected_ingress = {
                (name, yaml.safe_dump([MONITORING_PEER])) for name in names if name != "http"
            }
            if labels["app.kubernetes.io/component"] == "web":
                expected_ingress.add(("http", yaml.safe_dump(None)))
            assert ingress == expected_ingress, where


def test_prometheus_scrapes_the_metrics_ports_and_no_ingress_routes_them(variants) -> None:
    for variant in combinations_of(variants):
        config = variant.kind("overlays/prod", "ConfigMap")[0]["data"]
        for deployment in variant.kind("overlays/prod", "Deployment"):
            template = deployment["spec"]["template"]
            containers = {c["name"]: c for c in template["spec"]["containers"]}
            ports = {
                port["name"]: port["containerPort"]
                for container in containers.values()
                for port in container.get("ports", [])
            }
            where = f"{variant.name} {deployment['metadata']['name']}"
            annotations = template["metadata"].get("annotations", {})
            if "scheduler" in containers and len(containers) == 1:
                # The scheduler serves no metrics: nothing to scrape.
                assert not ports, where
                assert "prometheus.io/scrape" not in annotations, where
                continue
            # The usual annotations name the pod's port `metrics`: the web server's
            # METRICS_PORT, or the worker's WORKER_METRICS_PORT in a pod of its own.
            variable = "METRICS_PORT" if "web" in containers else "WORKER_METRICS_PORT"
            assert annotations == {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": config[variable],
                "prometheus.io/path": "/metrics",
            }, where
            assert ports["metrics"] == int(config[variable]), where
        # The Ingress reaches only the Service's ports, and those only the API's port.
        services = {s["metadata"]["name"]: s for s in variant.kind("overlays/prod", "Service")}
        (web_service,) = services.values()
        assert [p["targetPort"] for p in web_service["spec"]["ports"]] == ["http"]
        for ingress in variant.kind("overlays/prod", "Ingress"):
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    (port,) = [
                        p
                        for p in services[backend["name"]]["spec"]["ports"]
                        if p["name"] == backend["port"]["name"]
                    ]
                    assert port["targetPort"] == "http", variant.name


def test_overlays_set_namespace_image_and_secret_source(variants) -> None:
    for variant in combinations_of(variants):
        slug = variant.project.name
        for overlay, tag in (
            ("overlays/dev", "dev"),
            ("overlays/prod", variant.answers.get("version", "0.1.0")),
        ):
            documents = variant.documents(overlay)
            namespaces = {
                d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"
            }
            assert namespaces == {slug if overlay.endswith("prod") else f"{slug}-dev"}
            containers = [
                container
                for deployment in variant.kind(overlay, "Deployment")
                for pod in [deployment["spec"]["template"]["spec"]]
                for container in pod["containers"] + pod.get("initContainers", [])
            ]
            images = {c["image"] for c in containers}
            assert images == {f"registry.example.com/{slug}:{tag}"}
            secrets = variant.kind(overlay, "Secret")
            # dev generates its Secret from the git-ignored file; prod expects the cluster's.
            assert len(secrets) == (1 if overlay.endswith("dev") else 0)
            expected = secrets[0]["metadata"]["name"] if secrets else f"{slug}-secrets"
            for container in containers:
                referenced = {
                    source["secretRef"]["name"]
                    for source in container["envFrom"]
                    if "secretRef" in source
                }
                assert referenced == {expected}, container["name"]


def test_object_names_are_valid_even_for_the_longest_slug(variants) -> None:
    invalid = []
    for variant in variants.values():
        for overlay in OVERLAYS:
            for document in variant.documents(overlay):
                name, kind = document["metadata"]["name"], document["kind"]
                pattern = DNS_LABEL if kind in DNS_LABEL_KINDS else DNS_SUBDOMAIN
                if not pattern.fullmatch(name):
                    invalid.append(f"{variant.name} {overlay}: {kind} {name}")
    assert len(variants["longest-names"].project.name) == 63
    assert invalid == []


def test_every_object_carries_the_template_version_and_catalog_id(variants) -> None:
    for variant in combinations_of(variants):
        for overlay in OVERLAYS:
            for document in variant.documents(overlay):
                if document["kind"] == "Namespace":
                    continue
                labels = document["metadata"]["labels"]
                assert labels[TEMPLATE_VERSION_LABEL] == TEMPLATE_VERSION, document["kind"]
                # catalog-info.yaml's backstage.io/kubernetes-id finds objects by this label.
                assert labels[CATALOG_ID_LABEL] == variant.project.name, document["kind"]
