"""The HTTP contract: every framework and database, started with its own production command
on a free port, behaves the same over real HTTP, and so does each worker on each broker (see
one_database_per_worker). The suite knows nothing of the framework inside; it holds for all
of them unchanged.

Each combination runs two services: one on a fresh database, migrated with the project's own
migrate command, and one pointed at a database that cannot be reached. Tests of one
combination stay on one test process (conftest.CombinationScheduling), which starts each
service once.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from harness import (
    UV,
    VALID_COMBINATIONS,
    bake,
    combination_id,
    environment_for,
    one_database_per_worker,
    run,
)

pytestmark = pytest.mark.real


CONTRACT_COMBINATIONS = one_database_per_worker(VALID_COMBINATIONS)
WITH_DATABASE = [c for c in CONTRACT_COMBINATIONS if c["database"] != "none"]
WITH_WORKER = [c for c in CONTRACT_COMBINATIONS if c["worker"] != "none"]
# Seconds a worker may take to process an item queued through the API.
PROCESSING_TIMEOUT = 30
STARTUP_TIMEOUT = 60
REQUEST_TIMEOUT = 15


def database_admin(action: str, database_url: str) -> list[str]:
    """The command that drops the database a URL names and, to create, makes it anew: the
    server's own client, whatever driver and framework the project uses."""
    url = urlsplit(database_url)
    database = url.path.removeprefix("/")
    statements = [f"DROP DATABASE IF EXISTS {database}"]
    if action == "create":
        statements.append(f"CREATE DATABASE {database}")
    if url.scheme.startswith("postgres"):
        # One -c per statement: psql runs them one by one, outside a transaction.
        maintenance = url._replace(scheme="postgresql", path="/postgres").geturl()
        return ["psql", "--quiet", "--no-psqlrc", maintenance, *(f"-c{s}" for s in statements)]
    credentials = [f"--user={url.username}"]
    if url.password:
        credentials.append(f"--password={url.password}")
    return [
        "mariadb",
        f"--host={url.hostname}",
        f"--port={url.port}",
        *credentials,
        f"--execute={'; '.join(statements)}",
    ]


def cases(combinations: list[dict[str, str]]) -> list[Any]:
    return [pytest.param(c, id=combination_id(c)) for c in combinations]


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        assert self.content_type.startswith("application/json"), (self.status, self.body)
        return json.loads(self.body)


@dataclass
class Service:
    url: str
    log: Path
    environment: dict[str, str]
    command: str

    def request(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None
    ) -> Response:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                return Response(
                    response.status, response.headers["Content-Type"] or "", response.read()
                )
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers["Content-Type"] or "", error.read())

    def get(self, path: str) -> Response:
        return self.request("GET", path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unreachable(database_url: str, workdir: Path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{workdir / 'missing' / 'app.db'}"
    # The same server on port 1, where nothing listens.
    server, _, database = database_url.rpartition("/")
    return f"{server.rsplit(':', 1)[0]}:1/{database}"


class Services:
    """Installs each combination once and starts its services on demand. A test process runs
    one combination (an xdist group) at a time: starting another stops the ones before, so
    that idle services do not pile up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.combination = ""
        self.running: dict[str, Service] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.cleanups: list[tuple[list[str], dict[str, str]]] = []

    def start(self, combination: dict[str, str], *, reachable: bool) -> Service:
        if combination_id(combination) != self.combination:
            self.stop_all()
            self.combination = combination_id(combination)
        key = f"{combination_id(combination)}-{'up' if reachable else 'unreachable'}"
        if key not in self.running:
            self.running[key] = self._start(combination, key, reachable=reachable)
        return self.running[key]

    def _install(self, combination: dict[str, str]) -> tuple[Path, dict[str, str]]:
        workdir = self.root / combination_id(combination)
        if not workdir.exists():
            workdir.mkdir()
            project = bake(workdir, **combination)
            run([*UV, "sync", "--quiet", "--no-dev"], project, environment_for(combination))
        return next(p for p in workdir.iterdir() if p.is_dir()), environment_for(
            combination, "contract"
        )

    def _start(self, combination: dict[str, str], key: str, *, reachable: bool) -> Service:
        project, environment = self._install(combination)
        command = str(project / ".venv" / "bin" / project.name)
        workdir = self.root / key  # no .env here: the environment alone configures it
        workdir.mkdir(exist_ok=True)
        port = free_port()
        environment.update(
            ENVIRONMENT="production",
            SECRET_KEY=secrets.token_urlsafe(32),
            HOST="127.0.0.1",
            PORT=str(port),
            WEB_CONCURRENCY="2",
            LOG_LEVEL="INFO",
        )
        if combination.get("worker", "none") != "none":
            environment["WORKER_HEARTBEAT_FILE"] = str(workdir / "worker-heartbeat")
        if combination["database"] == "sqlite":
            environment["DATABASE_URL"] = f"sqlite:///{workdir / 'app.db'}"
        if "DATABASE_URL" in environment:
            if reachable:
                self._create_database(project, environment)
                run([command, "migrate"], workdir, environment)
            else:
                environment["DATABASE_URL"] = unreachable(environment["DATABASE_URL"], workdir)
        log = workdir / "service.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [command, "serve"], cwd=workdir, env=environment, stdout=output, stderr=output
            )
        self.processes.append(process)
        service = Service(f"http://127.0.0.1:{port}", log, environment, command)
        self._wait_until_answering(service, process, ready=reachable)
        if reachable and combination.get("worker", "none") != "none":
            # The worker: the same command, environment and database as the service.
            with (workdir / "worker.log").open("wb") as output:
                self.processes.append(
                    subprocess.Popen(
                        [command, "worker"],
                        cwd=workdir,
                        env=environment,
                        stdout=output,
                        stderr=output,
                    )
                )
        return service

    def _create_database(self, project: Path, environment: dict[str, str]) -> None:
        if environment["DATABASE_URL"].startswith("sqlite"):
            return
        run(database_admin("create", environment["DATABASE_URL"]), project, environment)
        self.cleanups.append((database_admin("drop", environment["DATABASE_URL"]), environment))

    @staticmethod
    def _wait_until_answering(
        service: Service, process: subprocess.Popen[bytes], *, ready: bool
    ) -> None:
        path = "/health/ready" if ready else "/health/live"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert process.poll() is None, f"service exited:\n{service.log.read_text()}"
            try:
                if service.get(path).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{path} did not answer 200 in {STARTUP_TIMEOUT}s:\n{service.log.read_text()}")

    def stop_all(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for command, environment in self.cleanups:
            subprocess.run(command, env=environment, check=False, capture_output=True)
        self.running, self.processes, self.cleanups = {}, [], []


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = Services(tmp_path_factory.mktemp("contract"))
    yield services
    services.stop_all()


@pytest.mark.parametrize("combination", cases(CONTRACT_COMBINATIONS))
def test_liveness_readiness_and_about(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=True)
    assert service.get("/health/live").json() == {"status": "ok"}
    ready = service.get("/health/ready")
    assert ready.status == 200
    assert ready.json()["status"] == "ok"
    about = service.get("/").json()
    assert set(about) == {"name", "version"}


@pytest.mark.parametrize("combination", cases(CONTRACT_COMBINATIONS))
def test_unknown_path_is_a_json_404(services: Services, combination: dict) -> None:
    response = services.start(combination, reachable=True).get("/no-such-path")
    assert response.status == 404
    assert response.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("combination", cases(CONTRACT_COMBINATIONS))
def test_every_request_is_logged_as_a_json_line(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=True)
    service.get("/health/live?probe=log")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        entries = [json.loads(line) for line in service.log.read_text().splitlines() if line]
        requests = [e for e in entries if e.get("message") == "request"]
        if any(e["path"] == "/health/live" and e["status"] == 200 for e in requests):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no request line for /health/live:\n{service.log.read_text()}")
    assert all({"method", "path", "status", "duration_ms"} <= set(e) for e in requests)


@pytest.mark.parametrize("combination", cases(WITH_DATABASE))
def test_create_get_and_delete(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=True)
    created = service.request("POST", "/items", {"name": "contract", "description": "d"})
    assert created.status == 201
    item = created.json()
    assert (item["name"], item["description"]) == ("contract", "d")
    assert isinstance(item["id"], int)
    assert item["created_at"]

    fetched = service.get(f"/items/{item['id']}")
    assert (fetched.status, fetched.json()) == (200, item)

    assert service.request("DELETE", f"/items/{item['id']}").status == 204
    gone = service.get(f"/items/{item['id']}")
    assert gone.status == 404
    assert gone.json() == {"detail": f"Item {item['id']} not found"}


@pytest.mark.parametrize("combination", cases(WITH_DATABASE))
def test_list_pages_through_items(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=True)
    ids = [service.request("POST", "/items", {"name": f"page {n}"}).json()["id"] for n in range(3)]
    total = service.get("/items?limit=1").json()["total"]
    assert total >= 3

    first = service.get(f"/items?limit=2&offset={total - 3}").json()
    assert [i["id"] for i in first["items"]] == ids[:2]
    assert (first["limit"], first["offset"], first["total"]) == (2, total - 3, total)
    rest = service.get(f"/items?limit=2&offset={total - 1}").json()
    assert [i["id"] for i in rest["items"]] == ids[2:]


@pytest.mark.parametrize("combination", cases(WITH_DATABASE))
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/items", {}),
        ("POST", "/items", {"name": ""}),
        ("POST", "/items", {"name": "x", "unexpected": 1}),
        ("POST", "/items", b"{not json"),
        ("POST", "/items", b"\x80"),
        ("GET", "/items?limit=0", None),
        ("GET", "/items?offset=-1", None),
        ("GET", "/items/not-a-number", None),
        ("GET", f"/items/{2**63}", None),
        ("GET", f"/items?offset={2**63}", None),
    ],
)
def test_invalid_input_is_a_json_4xx(
    services: Services, combination: dict, method: str, path: str, body: Any
) -> None:
    service = services.start(combination, reachable=True)
    if isinstance(body, bytes):
        response = service.request(method, path, raw=body)
    else:
        response = service.request(method, path, body)
    assert 400 <= response.status < 500
    assert response.json()["detail"]


@pytest.mark.parametrize("combination", cases(WITH_DATABASE))
def test_not_ready_while_the_database_is_unreachable(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=False)
    assert service.get("/health/live").status == 200
    ready = service.get("/health/ready")
    assert ready.status == 503
    assert ready.json()["status"] == "unavailable"
    items = service.get("/items")
    assert items.status == 503
    assert items.json() == {"detail": "Database unavailable"}


def wait_until_processed(
    service: Service, item_id: int, timeout: float = PROCESSING_TIMEOUT
) -> Any:
    """The item once the worker has processed it; the worker's log if it does not in time."""
    deadline = time.monotonic() + timeout
    while (item := service.get(f"/items/{item_id}").json())["status"] != "done":
        if time.monotonic() > deadline:
            worker_log = service.log.with_name("worker.log").read_text()
            pytest.fail(f"item {item_id} not processed in {timeout}s; worker log:\n{worker_log}")
        time.sleep(0.2)
    return item


@pytest.mark.parametrize("combination", cases(WITH_WORKER))
def test_an_item_is_processed_in_the_background(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=True)
    assert service.get("/health/ready").json()["checks"]["broker"] == "ok"
    item = service.request("POST", "/items", {"name": "three little words"}).json()
    assert item["status"] == "new"
    queued = service.request("POST", f"/items/{item['id']}/process")
    assert queued.status == 202
    assert queued.json()["status"] == "queued"

    processed = wait_until_processed(service, item["id"])
    assert processed["word_count"] == 3
    assert processed["processed_at"]

    again = service.request("POST", f"/items/{item['id']}/process")
    assert (again.status, again.json()) == (200, processed)
    assert service.request("POST", "/items/999999/process").status == 404

    # The worker's liveness probe, as an orchestrator runs it.
    health = subprocess.run(
        [service.command, "worker-health"],
        env=service.environment,
        capture_output=True,
        check=False,
        timeout=STARTUP_TIMEOUT,
    )
    assert health.returncode == 0, health.stderr
