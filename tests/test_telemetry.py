"""What a real Prometheus reads of a running service: the production server with two
processes (WEB_CONCURRENCY=2) and its worker, scraped every second. After a known number of
requests and processed items, its query API answers exactly those counts, summed over the
processes, and the histograms' counts agree. Once per framework and once per worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness import combination_id
from prometheus import Prometheus
from services import Services, wait_until_processed

pytestmark = pytest.mark.real

# One pairing per framework, and each worker once among them.
OBSERVED = [
    {"framework": "fastapi", "database": "sqlite", "worker": "celery", "broker": "redis"},
    {"framework": "flask", "database": "postgresql", "worker": "rq", "broker": "redis"},
    {"framework": "django", "database": "postgresql", "worker": "dramatiq", "broker": "rabbitmq"},
]
REQUESTS = 12
ITEMS = 5
# A route no other request of the test reaches.
ROUTE = "/"


def counted(prometheus: Prometheus, expression: str) -> float:
    return prometheus.value(expression) or 0.0


def settled(prometheus: Prometheus, job: str) -> None:
    # A scrape that began after the last answer has counted it.
    time.sleep(0.1)
    prometheus.scraped_since(job, time.time())


@pytest.mark.parametrize("combination", OBSERVED, ids=combination_id)
def test_prometheus_counts_every_request_over_the_server_processes(
    services: Services, combination: dict[str, str], tmp_path: Path
) -> None:
    service = services.start(combination, reachable=True)
    target = f"127.0.0.1:{service.environment['METRICS_PORT']}"
    requests = f'sum(http_requests_total{{route="{ROUTE}", method="GET", status="200"}})'
    durations = f'sum(http_request_duration_seconds_count{{route="{ROUTE}", method="GET"}})'
    with Prometheus(tmp_path, {"web": target}) as prometheus:
        settled(prometheus, "web")
        before = counted(prometheus, requests), counted(prometheus, durations)
        for _ in range(REQUESTS):
            assert service.get(ROUTE).status == 200
        settled(prometheus, "web")
        after = counted(prometheus, requests), counted(prometheus, durations)
        assert (after[0] - before[0], after[1] - before[1]) == (REQUESTS, REQUESTS)
        version = service.get("/").json()["version"]
        assert prometheus.query("service_build_info") != []
        assert {labels["version"] for labels, _ in prometheus.query("service_build_info")} == {
            version
        }
        assert prometheus.value("sum(http_requests_in_flight)") == 0.0
        service.get("/health/ready")
        settled(prometheus, "web")
        ready = prometheus.query("service_dependency_ready")
        assert {labels["dependency"]: value for labels, value in ready} == {
            "database": 1.0,
            "broker": 1.0,
        }


def counts_reached(
    prometheus: Prometheus, expressions: list[str], least: list[float]
) -> list[float]:
    """The expressions' values once each has reached its least, or as they stand after a few
    scrapes more: a worker counts a task a moment after its work is seen done."""
    deadline = time.monotonic() + 10
    while True:
        settled(prometheus, "worker")
        values = [counted(prometheus, expression) for expression in expressions]
        if all(v >= m for v, m in zip(values, least, strict=True)) or time.monotonic() > deadline:
            return values


@pytest.mark.parametrize("combination", OBSERVED, ids=combination_id)
def test_prometheus_counts_every_task_over_the_worker_processes(
    services: Services, combination: dict[str, str], tmp_path: Path
) -> None:
    service = services.start(combination, reachable=True)
    target = f"127.0.0.1:{service.environment['WORKER_METRICS_PORT']}"
    # Summed over the worker's processes and tasks, as a dashboard sums them.
    expressions = [
        "sum(worker_tasks_received_total)",
        "sum(worker_tasks_succeeded_total)",
        "sum(worker_task_duration_seconds_count)",
    ]
    with Prometheus(tmp_path, {"worker": target}) as prometheus:
        settled(prometheus, "worker")
        before = [counted(prometheus, expression) for expression in expressions]
        created = [service.request("POST", "/items", {"name": f"item {n}"}) for n in range(ITEMS)]
        item_ids = [response.json()["id"] for response in created]
        for item_id in item_ids:
            assert service.request("POST", f"/items/{item_id}/process").status == 202
        for item_id in item_ids:
            wait_until_processed(service, item_id)
        after = counts_reached(prometheus, expressions, [b + ITEMS for b in before])
        assert [a - b for a, b in zip(after, before, strict=True)] == [ITEMS] * 3
        assert prometheus.value("sum(worker_tasks_failed_total)") in (None, 0.0)
        backlog = prometheus.query("worker_queue_backlog")
        assert [labels["queue"] for labels, _ in backlog] == [service.environment["WORKER_QUEUE"]]
