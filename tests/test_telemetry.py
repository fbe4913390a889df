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
from services import Services

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
