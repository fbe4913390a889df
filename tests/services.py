"""Running baked projects as services: each combination installed once, started with its own
production commands (migrate, serve, worker) on a free port and configured by the environment
alone, and a client for the HTTP it answers. The HTTP contract, the deployment commands, the
reliability checks, the container tier and the service benchmark all run services this way.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from harness import combination_id, environment_for, one_database_per_worker, run
from installs import Installs

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


def each_database_and_worker(combinations: list[dict[str, str]]) -> list[dict[str, str]]:
    """The combinations the services tiers run: each framework with each database, and with
    each worker and broker, not each pairing of them. one_database_per_worker, less the
    combinations without a worker on a database that the framework meets with a worker, but
    for one per framework (the databases in turn): the code without a worker runs too."""
    sampled = one_database_per_worker(combinations)
    met = {(c["framework"], c["database"]) for c in sampled if c["worker"] != "none"}
    plain: dict[str, list[dict[str, str]]] = {}
    for c in sampled:
        if c["worker"] == "none" and (c["framework"], c["database"]) in met:
            plain.setdefault(c["framework"], []).append(c)
    kept = [found[turn % len(found)] for turn, found in enumerate(plain.values())]
    return [
        c
        for c in sampled
        if c["worker"] != "none" or (c["framework"], c["database"]) not in met or c in kept
    ]


def cases(combinations: list[dict[str, str]]) -> list[Any]:
    return [pytest.param(c, id=combination_id(c)) for c in combinations]


PROBLEM = "application/problem+json"


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers["Content-Type"] or ""

    def json(self) -> Any:
        assert self.content_type.startswith("application/json"), (self.status, self.body)
        return json.loads(self.body)

    def problem(self) -> Any:
        """The problem details (RFC 9457) the response carries, its media type checked."""
        assert self.content_type == PROBLEM, (self.status, self.content_type, self.body)
        problem = json.loads(self.body)
        assert (problem["type"], problem["status"]) == ("about:blank", self.status), problem
        return problem


@dataclass
class Service:
    url: str
    log: Path
    environment: dict[str, str]
    command: str

    @property
    def project(self) -> Path:
        """The installed project the service runs from (its command is in .venv/bin)."""
        return Path(self.command).parents[2]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
    ) -> Response:
        """One request, redirects not followed; a body is sent as `content_type` (None: with
        no Content-Type header)."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None and content_type else {}
        url = urlsplit(self.url)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(self, path: str) -> Response:
        return self.request("GET", path)


# The ports the tests give the services they start. A port the system hands out (port 0, or
# an outgoing connection's) may be taken by another connection between its choice and the
# service's bind, so these lie below that range; each test process has a block of its own.
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
PORTS_PER_PROCESS = 1000
TEST_PROCESSES = 8
_next_port = itertools.count()


def free_port() -> int:
    """A port nothing listens on, from this test process's block."""
    lowest_ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    block = lowest_ephemeral - PORTS_PER_PROCESS * (1 + worker % TEST_PROCESSES)
    for _ in range(PORTS_PER_PROCESS):
        port = block + next(_next_port) % PORTS_PER_PROCESS
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # another run's, or still closing
        return port
    raise RuntimeError(f"no free port in {block}-{block + PORTS_PER_PROCESS - 1}")


def unreachable(database_url: str, workdir: Path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{workdir / 'missing' / 'app.db'}"
    # The same server on port 1, where nothing listens.
    server, _, database = database_url.rpartition("/")
    return f"{server.rsplit(':', 1)[0]}:1/{database}"


class Services:
    """Starts each combination's services on demand, from its one install (installs.py).
    A test process runs one combination at a time (conftest.CombinationScheduling): starting
    another stops the ones before, so that idle services do not pile up."""

    # Names the databases and queues of these services: others may run the same combination
    # in the same process at once.
    purpose = "contract"

    def __init__(self, root: Path, installs: Installs | None = None) -> None:
        self.root = root
        self.installs = installs or Installs(root / "installs")
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
        # The development group is installed too, for the project's own suite: that the
        # runtime dependencies alone serve is proven by the images (test_deploy_commands,
        # and the container tier's, whose workers process items).
        return self.installs(combination), environment_for(combination, self.purpose)

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
            METRICS_PORT=str(free_port()),
            WEB_CONCURRENCY="2",
            LOG_LEVEL="INFO",
        )
        if combination.get("worker", "none") != "none":
            environment["WORKER_HEARTBEAT_FILE"] = str(workdir / "worker-heartbeat")
            environment["WORKER_METRICS_PORT"] = str(free_port())
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
            except (OSError, http.client.HTTPException):
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
                process.wait()
        for command, environment in self.cleanups:
            subprocess.run(command, env=environment, check=False, capture_output=True)
        self.running, self.processes, self.cleanups = {}, [], []


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
