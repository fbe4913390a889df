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
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness import VALID_COMBINATIONS
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


@pytest.mark.parametrize("combination", cases(CONTRACT_COMBINATIONS))
def test_liveness_readiness_and_about(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=True)
    assert service.get("/health/live").json() == {"status": "ok"}
    ready = service.get("/health/ready")
    assert ready.status == 200
    assert ready.json()["status"] == "ok"
    about = service.get("/").json()
    assert set(about) == {"name", "version"}


# A slash more makes another path, wherever it is: not found, never redirected.
UNKNOWN_PATHS = ["/no-such-path", "/health/live/", "/items/", "//health/live", "/health//live"]


@pytest.mark.parametrize("combination", cases(CONTRACT_COMBINATIONS))
def test_an_unknown_path_is_a_problem(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=True)
    for path in UNKNOWN_PATHS:
        response = service.get(path)
        assert response.status == 404, path
        assert response.problem() == {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "Nothing at this path",
        }


def methods_of_paths(combination: dict) -> list[tuple[str, str]]:
    paths = [("/", "GET, HEAD, OPTIONS"), ("/health/ready", "GET, HEAD, OPTIONS")]
    if combination["database"] != "none":
        paths.append(("/items", "GET, HEAD, OPTIONS, POST"))
        paths.append(("/items/1", "DELETE, GET, HEAD, OPTIONS"))
    if combination["worker"] != "none":
        paths.append(("/items/1/process", "OPTIONS, POST"))
    return paths


@pytest.mark.parametrize("combination", cases(CONTRACT_COMBINATIONS))
def test_options_and_405_name_every_method_of_the_path(
    services: Services, combination: dict
) -> None:
    service = services.start(combination, reachable=True)
    for path, allow in methods_of_paths(combination):
        options = service.request("OPTIONS", path)
        assert (options.status, options.headers["Allow"], options.body) == (204, allow, b""), path
        assert options.headers["Content-Type"] is None, path
        refused = service.request("PUT", path, {})
        assert (refused.status, refused.headers["Allow"]) == (405, allow), path
        assert refused.problem()["title"] == "Method Not Allowed"


@pytest.mark.parametrize("combination", cases(CONTRACT_COMBINATIONS))
def test_head_is_get_without_the_body(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=True)
    get, head = service.get("/"), service.request("HEAD", "/")
    assert (head.status, head.body, head.content_type) == (200, b"", get.content_type)
    assert head.headers["Content-Length"] == str(len(get.body))


@pytest.mark.parametrize("combination", cases(CONTRACT_COMBINATIONS))
def test_the_served_document_is_the_committed_contract(
    services: Services, combination: dict
) -> None:
    service = services.start(combination, reachable=True)
    served = service.get("/openapi.json").json()
    assert served["openapi"] == "3.1.0"
    committed = json.loads((service.project / "openapi.json").read_text())
    # What a project commits is the served document with its keys sorted, without the
    # library's extensions (openapi.py); no library adds one today, so the two are equal.
    assert served == committed
    docs = service.get("/docs")
    assert (docs.status, docs.content_type.split(";")[0]) == (200, "text/html")
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/assets/{asset}".encode() in docs.body
        assert service.get(f"/docs/assets/{asset}").status == 200


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
    # Nothing logs at INFO what only a maintainer of a library would read (alembic's plugins).
    assert [e for e in entries if e.get("logger") == "alembic.runtime.plugins"] == []


@pytest.mark.parametrize("combination", cases(WITH_DATABASE))
def test_create_get_and_delete(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=True)
    created = service.request("POST", "/items", {"name": "contract", "description": "d"})
    assert created.status == 201
    item = created.json()
    assert created.headers["Location"] == f"/items/{item['id']}"
    assert (item["name"], item["description"]) == ("contract", "d")
    assert isinstance(item["id"], int)
    assert item["created_at"]

    fetched = service.get(f"/items/{item['id']}")
    assert (fetched.status, fetched.json()) == (200, item)

    deleted = service.request("DELETE", f"/items/{item['id']}")
    assert (deleted.status, deleted.body, deleted.headers["Content-Type"]) == (204, b"", None)
    gone = service.get(f"/items/{item['id']}")
    assert gone.status == 404
    assert gone.problem()["detail"] == f"Item {item['id']} not found"


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
def test_a_repeated_parameter_counts_by_its_last_value(
    services: Services, combination: dict
) -> None:
    service = services.start(combination, reachable=True)
    assert service.get("/items?limit=abc&limit=1").json()["limit"] == 1
    assert service.get("/items?limit=1&limit=abc").problem()["errors"][0]["pointer"] == "/limit"


BODY = "application/json"


@pytest.mark.parametrize("combination", cases(WITH_DATABASE))
@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "parts"),
    [
        ("POST", "/items", {}, BODY, 422, [("body", "/name")]),
        ("POST", "/items", {"name": ""}, BODY, 422, [("body", "/name")]),
        ("POST", "/items", {"name": "x", "unexpected": 1}, BODY, 422, [("body", "/unexpected")]),
        ("POST", "/items", [], BODY, 422, [("body", "")]),
        # No database is given a NUL character: PostgreSQL refuses it in text.
        ("POST", "/items", {"name": "a\u0000b"}, BODY, 422, [("body", "/name")]),
        (
            "POST",
            "/items",
            {"name": "x", "description": "\u0000"},
            BODY,
            422,
            [("body", "/description")],
        ),
        # Nor a lone surrogate, which is no character at all (JSON can still escape one).
        ("POST", "/items", {"name": "\ud800"}, BODY, 422, [("body", "/name")]),
        ("POST", "/items", b"{not json", BODY, 400, None),
        ("POST", "/items", b"\x80", BODY, 400, None),
        ("POST", "/items", b"", BODY, 400, None),
        ("POST", "/items", b'{"name": "x"}', "text/plain", 415, None),
        ("POST", "/items", b"name=x", "application/x-www-form-urlencoded", 415, None),
        ("POST", "/items", b'{"name": "x"}', None, 415, None),
        ("GET", "/items?limit=0", None, None, 422, [("query", "/limit")]),
        ("GET", "/items?limit=101", None, None, 422, [("query", "/limit")]),
        ("GET", "/items?offset=-1", None, None, 422, [("query", "/offset")]),
        ("GET", f"/items?offset={2**31}", None, None, 422, [("query", "/offset")]),
        ("GET", "/items/not-a-number", None, None, 422, [("path", "/item_id")]),
        ("GET", "/items/0", None, None, 422, [("path", "/item_id")]),
        ("GET", f"/items/{2**31}", None, None, 422, [("path", "/item_id")]),
        ("DELETE", f"/items/{2**63}", None, None, 422, [("path", "/item_id")]),
    ],
)
def test_invalid_input_is_the_same_problem_everywhere(
    services: Services,
    combination: dict,
    method: str,
    path: str,
    body: Any,
    content_type: str | None,
    status: int,
    parts: list[tuple[str, str]] | None,
) -> None:
    service = services.start(combination, reachable=True)
    if isinstance(body, bytes):
        response = service.request(method, path, raw=body, content_type=content_type)
    else:
        response = service.request(method, path, body)
    assert response.status == status, response
    problem = response.problem()
    if parts is None:
        assert "errors" not in problem
    else:
        assert [(e["location"], e["pointer"]) for e in problem["errors"]] == parts
        assert all(e["detail"] for e in problem["errors"])


@pytest.mark.parametrize("combination", cases(WITH_DATABASE))
def test_not_ready_while_the_database_is_unreachable(services: Services, combination: dict) -> None:
    service = services.start(combination, reachable=False)
    assert service.get("/health/live").status == 200
    ready = service.get("/health/ready")
    assert ready.status == 503
    assert ready.json()["status"] == "unavailable"
    items = service.get("/items")
    assert items.status == 503
    assert items.problem()["detail"] == "Database unavailable"


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


# schemathesis's bounds: enough examples per operation to meet each documented status, few
# enough for CI's budget; a fixed seed, so that a failure comes back on a rerun.
SCHEMATHESIS_OPTIONS = ["--checks=all", "--max-examples=25", "--seed=15", "--workers=1"]


@pytest.mark.parametrize("combination", cases(CONTRACT_COMBINATIONS))
def test_schemathesis_finds_the_served_document_true(
    services: Services, combination: dict, tmp_path: Path
) -> None:
    """Every check of schemathesis, a client we did not write, against the production
    server and the document it serves: statuses, content types, headers and bodies as
    documented, no server error, 405 with Allow for undocumented methods, and the stateful
    phase's created items found and deleted ones gone."""
    service = services.start(combination, reachable=True)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{service.url}/openapi.json",
            *SCHEMATHESIS_OPTIONS,
            "--generation-database=none",
            "--no-color",
        ],
        cwd=tmp_path,
        env={**service.environment, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    operations = len(
        [op for path in service.get("/openapi.json").json()["paths"].values() for op in path]
    )
    assert f"Tested: {operations}\n" in result.stdout, result.stdout
    cases_run = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert cases_run, result.stdout
    print(f"schemathesis: {cases_run.group(0)} for {operations} operations")
