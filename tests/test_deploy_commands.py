"""The deployment artifacts' own commands, run as processes on this machine: what the
Dockerfile builds, what compose and Kubernetes start, with the environment those files give
them, pointed at this machine's database servers instead of their hosts.

No container engine runs here, so the image is made by running the build stage's own
commands (uv, on the build context .dockerignore lets through); every command the manifests
name then runs from that environment: migrate, serve, the probes and the image's
HEALTHCHECK.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from artifacts import dockerignored, instructions, kubernetes_workload
from harness import (
    UV,
    VALID_COMBINATIONS,
    combination_id,
    environment_for,
    run,
)
from installs import Installs
from services import Service, Services, cases, each_database_and_worker, free_port

pytestmark = pytest.mark.real

WITH_MIGRATIONS = [c for c in VALID_COMBINATIONS if c["database"] != "none"]


@dataclass
class Image:
    """The image's filesystem root on this machine, and how the image runs a command."""

    root: Path
    environment: dict[str, str]
    workdir: Path
    entrypoint: list[str]
    command: list[str]
    healthcheck: list[str]

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def executable(self, argv: list[str]) -> list[str]:
        """argv as the image runs it: its first word found on the image's PATH."""
        found = shutil.which(argv[0], path=self.environment["PATH"])
        assert found, f"{argv[0]} is not on the image's PATH"
        return [found, *argv[1:]]


def build_context(project: Path, context: Path) -> None:
    """The files `docker build` sends: the project, less what .dockerignore leaves out."""
    lines = (project / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line.strip() and not line.startswith("#")]
    exceptions = [pattern[1:].strip("/") for pattern in patterns if pattern.startswith("!")]

    def all_left_out(directory: str) -> bool:
        # Left out, and no exception could let anything below it back in: not walked (the
        # checkout's virtual environment, thousands of files).
        return dockerignored(patterns, directory) and not any(
            set(exception) & set("*?[") or exception.startswith(f"{directory}/")
            for exception in exceptions
        )

    for directory, subdirectories, files in os.walk(project):
        below = Path(directory).relative_to(project)
        subdirectories[:] = [d for d in subdirectories if not all_left_out((below / d).as_posix())]
        for name in files:
            relative = (below / name).as_posix()
            if not dockerignored(patterns, relative):
                (context / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(project / relative, context / relative)


def stages(dockerfile: Path) -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, by the stage's name."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            current = []
            found[arguments.split(" AS ")[-1]] = current
        else:
            current.append((keyword, arguments))
    return found


def build_image(project: Path, root: Path, environment: dict[str, str]) -> Image:
    """Run the Dockerfile's build stage as BuildKit would, with this machine's uv and
    Python, then describe its runtime stage."""
    context = root.parent / "context"
    build_context(project, context)
    dockerfile = stages(project / "Dockerfile")
    build_environment = dict(environment)
    workdir = root
    for keyword, arguments in dockerfile["build"]:
        if keyword == "ENV":
            for assignment in shlex.split(arguments):
                name, _, value = assignment.partition("=")
                build_environment[name] = (
                    str(root / value.lstrip("/")) if value[:1] == "/" else value
                )
        elif keyword == "WORKDIR":
            workdir = root / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY" and arguments.startswith("--from=uv "):
            continue  # this machine's uv: the same version (test_dockerfile checks the pin)
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            for source in sources:
                target = (
                    workdir / destination / Path(source).name
                    if destination.endswith("/")
                    else workdir / destination
                )
                if (context / source).is_dir():
                    shutil.copytree(context / source, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(context / source, target)
        elif keyword == "RUN":
            run_step(arguments, context, workdir, build_environment)
    # The runtime stage copies the virtual environment alone: the sources go.
    shutil.rmtree(workdir)
    runtime = dockerfile["runtime"]
    image_environment = {"PATH": os.environ["PATH"]}
    for keyword, arguments in runtime:
        if keyword == "ENV":
            for assignment in shlex.split(arguments):
                name, _, value = assignment.partition("=")
                value = value.replace("$PATH", image_environment.get("PATH", ""))
                image_environment[name] = value.replace("/app/", f"{root}/app/")
    last = dict(runtime)
    healthcheck = last["HEALTHCHECK"].partition("CMD ")[2]
    image_workdir = root / last["WORKDIR"].lstrip("/")
    return Image(
        root,
        image_environment,
        image_workdir,
        json.loads(last["ENTRYPOINT"]),
        json.loads(last["CMD"]),
        json.loads(healthcheck),
    )


def run_step(arguments: str, context: Path, workdir: Path, environment: dict[str, str]) -> None:
    if arguments.startswith("apt-get "):
        return  # system libraries: this machine's own (CI installs them)
    words = shlex.split(arguments)
    mounted = []
    while words[0].startswith("--mount="):
        options = dict(option.split("=", 1) for option in words.pop(0)[8:].split(","))
        if options["type"] == "bind":
            target = workdir / options["target"]
            shutil.copy2(context / options["source"], target)
            mounted.append(target)
    assert words[0] == "uv", f"a build step this test cannot run: {arguments}"
    run([*UV, *words[1:]], workdir, environment)
    for target in mounted:
        target.unlink()


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory, installed: Installs) -> Iterator[Any]:
    built: dict[str, tuple[Path, Image]] = {}

    def get(combination: dict[str, str]) -> tuple[Path, Image]:
        key = combination_id(combination)
        if key not in built:
            workdir = tmp_path_factory.mktemp(f"image-{key}")
            # A checkout after the README's first steps: its lock file, which the image
            # installs exactly, and whatever else the checkout holds (.dockerignore keeps it
            # out).
            project = installed(combination)
            environment = environment_for(combination)
            built[key] = (project, build_image(project, workdir / "root", environment))
        return built[key]

    return get


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory, installed: Installs) -> Iterator[Services]:
    services = Services(tmp_path_factory.mktemp("deploy"), installed)
    yield services
    services.stop_all()


def on_this_machine(
    manifest_environment: dict[str, str], combination: dict[str, str], image: Image, name: str
) -> dict[str, str]:
    """The manifests' environment with their hosts replaced by this machine's: the server
    in DATABASE_URL, a directory for the volume SQLite lives on, the broker in BROKER_URL
    (with a queue of its own), free ports."""
    environment = {**image.environment, **manifest_environment, "PORT": str(free_port())}
    for metrics_port in ("METRICS_PORT", "WORKER_METRICS_PORT"):
        if metrics_port in manifest_environment:
            environment[metrics_port] = str(free_port())
    url = manifest_environment.get("DATABASE_URL", "")
    if url.startswith("sqlite:////"):
        environment["DATABASE_URL"] = f"sqlite:///{image.path(url.removeprefix('sqlite:///'))}"
        image.path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    elif url:
        database = environment_for(combination, name)
        environment["DATABASE_URL"] = database["DATABASE_URL"]
    if "BROKER_URL" in manifest_environment:
        broker = environment_for(combination, name)
        environment.update({k: broker[k] for k in ("BROKER_URL", "WORKER_QUEUE")})
    return environment


def kubernetes_environment(
    project: Path, container: str, component: str = "web"
) -> tuple[dict[str, Any], dict[str, str]]:
    """A container of the dev overlay's Deployment of the component (web, worker), and the
    environment its envFrom gives it (the ConfigMap and the Secret the overlay generates)."""
    _pod, spec, environment = kubernetes_workload(project, container, component)
    return spec, environment


def compose_environment(project: Path, service: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A compose service, and its environment: env_file, then its `environment`."""
    spec = yaml.safe_load((project / "compose.yaml").read_text())["services"][service]
    environment = {}
    env_file = spec.get("env_file")
    for line in (project / env_file).read_text().splitlines() if env_file else []:
        name, separator, value = line.partition("=")
        if separator and not name.startswith("#"):
            environment[name] = value
    environment.update({k: str(v) for k, v in spec.get("environment", {}).items()})
    return spec, environment


def run_command(image: Image, argv: list[str], environment: dict[str, str]) -> None:
    run(image.executable(argv), image.workdir, environment)


def launch(
    services: Services, image: Image, argv: list[str], environment: dict[str, str], startup: str
) -> Service:
    """Start the server as the manifest does; stopped with the HTTP contract's services."""
    port = environment["PORT"]
    log = image.workdir / f"service-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            image.executable(argv), cwd=image.workdir, env=environment, stdout=output, stderr=output
        )
    services.processes.append(process)
    service = Service(f"http://127.0.0.1:{port}", log, environment, image.executable(argv)[0])
    assert startup in ("/health/live", "/health/ready")
    Services._wait_until_answering(service, process, ready=startup == "/health/ready")
    return service


def check_serving(
    services: Services,
    image: Image,
    environment: dict[str, str],
    argv: list[str],
    probes: dict[str, str],
    database: str,
) -> None:
    service = launch(services, image, argv, environment, probes["startup"])
    assert service.get(probes["liveness"]).status == 200
    assert service.get(probes["readiness"]).status == 200
    if database != "none":
        # The migrations ran: the example resource's table exists.
        assert service.request("POST", "/items", {"name": "deployed"}).status == 201
    # The image's HEALTHCHECK (compose's health check of the web service) passes...
    healthcheck = subprocess.run(
        image.executable(image.healthcheck),
        env=environment,
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert healthcheck.returncode == 0, healthcheck.stderr
    # ... and fails where nothing answers.
    elsewhere = {**environment, "PORT": str(free_port())}
    healthcheck = subprocess.run(
        image.executable(image.healthcheck),
        env=elsewhere,
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert healthcheck.returncode != 0


def check_worker_liveness(project: Path, combination: dict[str, str], image: Image) -> None:
    """The worker's liveness probe, as the manifests give it: it fails without a heartbeat
    and passes once the file the worker touches (WORKER_HEARTBEAT_FILE) is fresh."""
    component = "web" if combination["database"] == "sqlite" else "worker"
    worker, manifest_environment = kubernetes_environment(project, "worker", component)
    environment = on_this_machine(manifest_environment, combination, image, "k8s")
    heartbeat = image.path(manifest_environment["WORKER_HEARTBEAT_FILE"])
    heartbeat.parent.mkdir(parents=True, exist_ok=True)
    environment["WORKER_HEARTBEAT_FILE"] = str(heartbeat)
    heartbeat.unlink(missing_ok=True)
    command = image.executable(worker["livenessProbe"]["exec"]["command"])

    def probe() -> int:
        return subprocess.run(
            command, env=environment, capture_output=True, check=False, timeout=30
        ).returncode

    assert probe() != 0
    heartbeat.touch()
    assert probe() == 0


# One test per combination, so that each image is built once. What Kubernetes and compose
# run changes with the framework, the database and the worker and broker, not with each
# pairing of them: the HTTP contract's combinations (the images themselves are built by a
# real engine in test_container.py).
@pytest.mark.parametrize("combination", cases(each_database_and_worker(VALID_COMBINATIONS)))
def test_kubernetes_and_compose_commands_run_and_pass_their_checks(
    images, services: Services, combination: dict[str, str]
) -> None:
    project, image = images(combination)
    database = combination["database"]

    # Kubernetes: the dev overlay's web pod, its init container first.
    web, manifest_environment = kubernetes_environment(project, "web")
    environment = on_this_machine(manifest_environment, combination, image, "k8s")
    if database != "none":
        services._create_database(image.path("/app"), environment)
        migrate, _ = kubernetes_environment(project, "migrate")
        run_command(image, [*image.entrypoint, *migrate["args"]], environment)
    probes = {
        name: web[f"{name}Probe"]["httpGet"]["path"]
        for name in ("startup", "liveness", "readiness")
    }
    check_serving(services, image, environment, [*image.entrypoint, *web["args"]], probes, database)
    if combination.get("worker", "none") != "none":
        check_worker_liveness(project, combination, image)

    # compose: the database's health check (PostgreSQL's is a client tool this machine has;
    # MariaDB's is a script inside its image), the migrate service, then the web service
    # with the image's own command.
    if database == "postgresql":
        spec, _ = compose_environment(project, "database")
        test = spec["healthcheck"]["test"]
        assert test[0] == "CMD"
        # Inside its container it reaches the server on the local socket; here, over TCP.
        ready = subprocess.run(
            test[1:], env={**os.environ, "PGHOST": "127.0.0.1"}, capture_output=True, check=False
        )
        assert ready.returncode == 0, ready.stdout + ready.stderr
    web, compose_variables = compose_environment(project, "web")
    environment = on_this_machine(compose_variables, combination, image, "compose")
    if database != "none":
        services._create_database(image.path("/app"), environment)
        migrate, _ = compose_environment(project, "migrate")
        run_command(image, [*image.entrypoint, *migrate["command"]], environment)
    probes = {"startup": "/health/live", "liveness": "/health/live", "readiness": "/health/ready"}
    command = [*image.entrypoint, *web.get("command", image.command)]
    check_serving(services, image, environment, command, probes, database)


def test_the_image_holds_compiled_code_and_no_sources(images) -> None:
    _project, image = images({"framework": "fastapi", "database": "sqlite"})
    venv = image.path("/app/.venv")
    package = next(venv.glob("lib/python*/site-packages/my_service"))
    assert list(package.glob("__pycache__/*.pyc"))
    assert not image.path("/src").exists()
    assert not list(venv.glob("lib/python*/site-packages/*.pth")) or all(
        "/src" not in p.read_text() for p in venv.glob("lib/python*/site-packages/*.pth")
    )
