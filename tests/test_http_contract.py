"""The HTTP contract: every framework with every database, started with its own production
command on a free port, behaves the same over real HTTP, and so does each worker on each
broker (services.each_database_and_worker samples the pairings). The suite knows nothing of
the framework inside; it holds for all of them unchanged.

Each combination runs two services: one on a fresh database, migrated with the project's own
migrate command, and one pointed at a database that cannot be reached. Tests of one
combination stay on one test process (conftest.CombinationScheduling), which starts each
service once.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness import VALID_COMBINATIONS
from installs import Installs
from services import (
    STARTUP_TIMEOUT,
    Services,
    cases,
    each_database_and_worker,
    wait_until_processed,
)

pytestmark = pytest.mark.real


CONTRACT_COMBINATIONS = each_database_and_worker(VALID_COMBINATIONS)
WITH_DATABASE = [c for c in CONTRACT_COMBINATIONS if c["database"] != "none"]
WITH_WORKER = [c for c in CONTRACT_COMBINATIONS if c["worker"] != "none"]


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory, installed: Installs) -> Iterator[Services]:
    services = Services(tmp_path_factory.mktemp("contract"), installed)
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
