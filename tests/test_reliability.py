"""Reliability: the generated services, started with their production command, survive the
faults production brings. A database that goes away under a running service, a bounded load,
and malformed requests (fuzzing) each get an answer that is a clean JSON status, never a
hang, a 500 or a traceback.

The services come from the HTTP contract suite's helpers; each framework runs once, on
PostgreSQL. A broker that goes away under a running service and worker is survived too: each
worker runs once, on a Redis of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import CHOICES, VALID_COMBINATIONS, combination_id, environment_for
from installs import Installs
from loadgen import run_load
from services import Service, Services, cases, free_port, wait_until_processed

pytestmark = pytest.mark.real

ON_POSTGRESQL = [
    c for c in VALID_COMBINATIONS if c["database"] == "postgresql" and c["worker"] == "none"
]
# Each worker once, on the frameworks in turn: the broker outage cases. Any number of
# frameworks and workers pair this way.
WORKERS = [worker for worker in CHOICES["worker"] if worker != "none"]
WORKERS_ON_REDIS = [
    {
        "framework": CHOICES["framework"][turn % len(CHOICES["framework"])],
        "database": "postgresql",
        "worker": worker,
        "broker": "redis",
    }
    for turn, worker in enumerate(WORKERS)
]
ON_PRIVATE_REDIS = [c for c in WORKERS_ON_REDIS if c in VALID_COMBINATIONS]
# How long a recovered service may take to see the database again (its pool reconnects).
RECOVERY_TIMEOUT = 30
# How long a worker may take to process an item once its broker answers again.
PROCESSING_TIMEOUT = 60


def postgresql_program(name: str) -> str:
    """A PostgreSQL server program: the newest installed version's, else from PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3])
    )
    program = str(candidates[-1]) if candidates else shutil.which(name)
    if not program:
        pytest.fail(f"{name} not found: install the PostgreSQL server package")
    return program


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of this test process alone, in a temporary folder on a free port,
    so that stopping it disturbs no one else."""

    directory: Path
    port: int

    @property
    def user(self) -> str | None:
        # initdb refuses to run as root: the server runs as the system's postgres user.
        return "postgres" if os.geteuid() == 0 else None

    def _run(self, *command: str) -> None:
        subprocess.run(
            command, check=True, capture_output=True, user=self.user, timeout=120, cwd="/"
        )

    def create(self) -> None:
        self._run(
            postgresql_program("initdb"),
            f"--pgdata={self.directory / 'data'}",
            "--username=postgres",
            "--auth=trust",
            "--no-sync",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            postgresql_program("pg_ctl"),
            f"--pgdata={self.directory / 'data'}",
            f"--log={self.directory / 'server.log'}",
            f"--options={options}",
            "--wait",
            "start",
        )

    def stop(self) -> None:
        # fast: the server closes every client connection, as a crash or failover would.
        self._run(
            postgresql_program("pg_ctl"),
            f"--pgdata={self.directory / 'data'}",
            "--mode=fast",
            "--wait",
            "stop",
        )

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def private_cluster() -> Iterator[PrivateCluster]:
    directory = Path(tempfile.mkdtemp(prefix="reliability-pg-"))
    cluster = PrivateCluster(directory, free_port())
    if cluster.user:
        shutil.chown(directory, cluster.user)
    cluster.create()
    cluster.start()
    yield cluster
    subprocess.run(
        [
            postgresql_program("pg_ctl"),
            f"--pgdata={directory / 'data'}",
            "--mode=immediate",
            "stop",
        ],
        check=False,
        capture_output=True,
        user=cluster.user,
        cwd="/",
    )
    shutil.rmtree(directory, ignore_errors=True)


class ReliabilityServices(Services):
    """The contract suite's services, on databases of their own: the contract suite may run
    in the same test process, with its own services on its own databases."""

    def database_url(self, combination: dict[str, str]) -> str:
        return environment_for(combination, "reliability")["DATABASE_URL"]

    def _install(self, combination: dict[str, str]) -> tuple[Path, dict[str, str]]:
        project, environment = super()._install(combination)
        if "DATABASE_URL" in environment:
            environment["DATABASE_URL"] = self.database_url(combination)
        return project, environment


class PrivateDatabaseServices(ReliabilityServices):
    """Services whose database is on the private cluster."""

    def __init__(self, root: Path, installs: Installs, cluster: PrivateCluster) -> None:
        super().__init__(root, installs)
        self.cluster = cluster

    def database_url(self, combination: dict[str, str]) -> str:
        return self.cluster.url(f"outage_{combination_id(combination).replace('-', '_')}")


@pytest.fixture(scope="session")
def outage_services(
    tmp_path_factory: pytest.TempPathFactory, installed: Installs, private_cluster: PrivateCluster
) -> Iterator[PrivateDatabaseServices]:
    root = tmp_path_factory.mktemp("outage")
    services = PrivateDatabaseServices(root, installed, private_cluster)
    yield services
    services.stop_all()


@pytest.fixture(scope="session")
def services(
    tmp_path_factory: pytest.TempPathFactory, installed: Installs
) -> Iterator[ReliabilityServices]:
    services = ReliabilityServices(tmp_path_factory.mktemp("reliability"), installed)
    yield services
    services.stop_all()


@pytest.mark.parametrize("combination", cases(ON_POSTGRESQL))
def test_database_outage_is_survived(
    outage_services: PrivateDatabaseServices, combination: dict
) -> None:
    service = outage_services.start(combination, reachable=True)
    process = outage_services.processes[-1]
    item = service.request("POST", "/items", {"name": "before the outage"}).json()

    outage_services.cluster.stop()
    try:
        # Several rounds, so that every server process meets the outage.
        for _ in range(4):
            assert service.get("/health/live").status == 200
            ready = service.get("/health/ready")
            assert ready.status == 503, ready
            assert ready.json()["status"] == "unavailable"
            for method, path, body in [
                ("GET", f"/items/{item['id']}", None),
                ("GET", "/items", None),
                ("POST", "/items", {"name": "during the outage"}),
            ]:
                response = service.request(method, path, body)
                assert response.status == 503, (method, path, response)
                assert response.problem()["detail"] == "Database unavailable"
    finally:
        outage_services.cluster.start()

    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while service.get("/health/ready").status != 200:
        assert time.monotonic() < deadline, f"not ready again:\n{service.log.read_text()}"
        time.sleep(0.5)
    for _ in range(4):
        fetched = service.get(f"/items/{item['id']}")
        assert (fetched.status, fetched.json()) == (200, item)
    assert service.request("POST", "/items", {"name": "after"}).status == 201
    assert process.poll() is None, "the service restarted"


@dataclass
class PrivateRedis:
    """A Redis server of this test process alone, on a free port. Its append-only file keeps
    what was queued across a restart, as a broker's Redis must."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.directory / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--dir",
                    str(self.directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while not answers(self.port):
            assert self.process.poll() is None, (self.directory / "server.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        # SIGTERM: the server closes every client connection, as a crash or failover would.
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=RECOVERY_TIMEOUT)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    if not shutil.which("redis-server"):
        pytest.fail("redis-server not found: install the Redis server package")
    directory = Path(tempfile.mkdtemp(prefix="reliability-redis-"))
    redis = PrivateRedis(directory, free_port())
    redis.start()
    yield redis
    if redis.process and redis.process.poll() is None:
        redis.process.kill()
        redis.process.wait()
    shutil.rmtree(directory, ignore_errors=True)


class PrivateBrokerServices(ReliabilityServices):
    """Services, and their workers, whose broker is the private Redis."""

    def __init__(self, root: Path, installs: Installs, redis: PrivateRedis) -> None:
        super().__init__(root, installs)
        self.redis = redis

    def _install(self, combination: dict[str, str]) -> tuple[Path, dict[str, str]]:
        project, environment = super()._install(combination)
        environment["BROKER_URL"] = self.redis.url
        return project, environment

    def replace_worker(self, service: Service, work: Callable[[], None]) -> None:
        """Stop the service's worker as an orchestrator does (SIGTERM), do the work, then
        start a new one, as its Deployment would."""
        worker = self.processes[-1]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=RECOVERY_TIMEOUT) == 0
        work()
        with service.log.with_name("worker.log").open("ab") as output:
            self.processes.append(
                subprocess.Popen(
                    [service.command, "worker"],
                    cwd=service.log.parent,
                    env=service.environment,
                    stdout=output,
                    stderr=output,
                )
            )


@pytest.fixture(scope="session")
def broker_outage_services(
    tmp_path_factory: pytest.TempPathFactory, installed: Installs, private_redis: PrivateRedis
) -> Iterator[PrivateBrokerServices]:
    root = tmp_path_factory.mktemp("broker-outage")
    services = PrivateBrokerServices(root, installed, private_redis)
    yield services
    services.stop_all()


def queue_item(service: Service, name: str) -> tuple[int, int]:
    """Create an item and ask for its processing: its id, and the status of the asking."""
    item = service.request("POST", "/items", {"name": name}).json()
    return item["id"], service.request("POST", f"/items/{item['id']}/process").status


def wait_until_ready(service: Service) -> None:
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while service.get("/health/ready").status != 200:
        assert time.monotonic() < deadline, f"not ready again:\n{service.log.read_text()}"
        time.sleep(0.5)


@pytest.mark.parametrize("combination", cases(ON_PRIVATE_REDIS))
def test_broker_outage_is_survived(
    broker_outage_services: PrivateBrokerServices, combination: dict
) -> None:
    service = broker_outage_services.start(combination, reachable=True)
    web, worker = broker_outage_services.processes[-2:]
    redis = broker_outage_services.redis

    before, status = queue_item(service, "before the outage")
    assert status == 202
    wait_until_processed(service, before, PROCESSING_TIMEOUT)
    # The outage meets the worker waiting for messages, as the test says, not in the moment
    # after a task when it records the task's end on the broker: RQ's worker quits when the
    # broker drops then (its Deployment starts another; the probe is worker-health).
    time.sleep(2)

    redis.stop()
    try:
        for _ in range(4):
            assert service.get("/health/live").status == 200
            ready = service.get("/health/ready")
            assert ready.status == 503, ready
            checks = ready.json()["checks"]
            assert checks["database"] == "ok", checks
            assert checks["broker"].startswith("unavailable"), checks
        during, status = queue_item(service, "during the outage")
        assert status == 503
        # The item keeps its place: queued, for the periodic sweep (or a new request).
        assert service.get(f"/items/{during}").json()["status"] == "queued"
        # Long enough for the worker to meet the outage while it waits for messages.
        time.sleep(3)
    finally:
        redis.start()

    wait_until_ready(service)
    after, status = queue_item(service, "after the outage")
    assert status == 202
    assert service.request("POST", f"/items/{during}/process").status == 202
    assert wait_until_processed(service, after, PROCESSING_TIMEOUT)["word_count"] == 3
    assert wait_until_processed(service, during, PROCESSING_TIMEOUT)["word_count"] == 3
    # The same processes did it all: neither needed a restart.
    assert web.poll() is None, "the service restarted"
    assert worker.poll() is None, (
        f"the worker exited:\n{service.log.with_name('worker.log').read_text()}"
    )


@pytest.mark.parametrize("combination", cases(ON_PRIVATE_REDIS))
def test_tasks_queued_before_a_broker_outage_are_not_lost(
    broker_outage_services: PrivateBrokerServices, combination: dict
) -> None:
    service = broker_outage_services.start(combination, reachable=True)
    queued: list[int] = []

    def queue_then_restart_the_broker() -> None:
        # No worker takes them meanwhile: they wait in the broker through its restart.
        for n in range(3):
            item_id, status = queue_item(service, f"waiting item {n}")
            assert status == 202
            queued.append(item_id)
        broker_outage_services.redis.stop()
        broker_outage_services.redis.start()
        wait_until_ready(service)

    broker_outage_services.replace_worker(service, queue_then_restart_the_broker)
    for item_id in queued:
        assert wait_until_processed(service, item_id, PROCESSING_TIMEOUT)["word_count"] == 3


def log_errors(service: Service) -> list[str]:
    """The log lines of level ERROR or above, and any line that is not JSON."""
    errors = []
    for line in service.log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            errors.append(line)
            continue
        if entry.get("level") in ("ERROR", "CRITICAL"):
            errors.append(line)
    return errors


@pytest.mark.parametrize("combination", cases(ON_POSTGRESQL))
def test_bounded_load_gives_no_server_error(
    services: ReliabilityServices, combination: dict
) -> None:
    service = services.start(combination, reachable=True)
    ids = [service.request("POST", "/items", {"name": f"load {n}"}).json()["id"] for n in range(5)]
    mix = [
        *(("GET", f"/items/{item_id}", None) for item_id in ids),
        ("GET", "/items?limit=5", None),
        ("GET", "/health/ready", None),
        ("GET", "/health/live", None),
        ("POST", "/items", b'{"name": "under load"}'),
    ]
    result = run_load(service.url, mix, concurrency=8, max_requests=3000, max_seconds=10)
    assert not result.errors, result.errors[:5]
    assert result.requests >= 100, result
    assert all(status < 500 for status in result.statuses), result.statuses
    assert set(result.statuses) <= {200, 201}, result.statuses
    assert not log_errors(service), log_errors(service)[:5]


# Requests the items API does not expect: any method, odd paths and queries, any body.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
BODIES = (
    st.none()
    | st.binary(max_size=64)
    | JSON_VALUES.map(lambda value: json.dumps(value).encode())
    | st.fixed_dictionaries(
        {"name": JSON_VALUES}, optional={"description": JSON_VALUES, "id": JSON_VALUES}
    ).map(lambda value: json.dumps(value).encode())
)
SEGMENTS = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="/?#%"), min_size=0, max_size=12
).map(lambda text: "".join(c if c.isprintable() and c != " " else "_" for c in text))
PATHS = st.one_of(
    st.builds(lambda s: f"/items/{s}", SEGMENTS | st.integers().map(str)),
    st.builds(
        lambda limit, offset: f"/items?limit={limit}&offset={offset}",
        SEGMENTS | st.integers().map(str),
        SEGMENTS | st.integers().map(str),
    ),
    st.just("/items"),
    st.just("/health/ready"),
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])


@pytest.mark.parametrize("combination", cases(ON_POSTGRESQL))
def test_fuzzed_requests_get_json_and_no_server_error(
    services: ReliabilityServices, combination: dict
) -> None:
    service = services.start(combination, reachable=True)

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(method=METHODS, path=PATHS, body=BODIES)
    def request_gets_a_json_answer(method: str, path: str, body: bytes | None) -> None:
        response = service.request(method, path, raw=body)
        assert response.status < 500, (method, path, body, response)
        # Every answer with a body is JSON: an error's is a problem (RFC 9457).
        if response.status >= 400:
            response.problem()
        elif response.status != 204:
            response.json()

    request_gets_a_json_answer()
    assert not log_errors(service), log_errors(service)[:5]
