"""Traces: a generated service and its worker, started with their production commands and
pointed at an OTLP/HTTP receiver by OpenTelemetry's variables alone, send the spans of one
`POST /items/{id}/process` as one trace: the web request, its SQL, the enqueue and the
worker's task, each the child of the one before, across processes and the broker.

Each framework runs once, with a worker of its own (each worker once too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import combination_id
from installs import Installs
from otlp import Receiver, Span
from services import Services, cases, wait_until_processed

pytestmark = pytest.mark.real

PAIRINGS = [
    {"framework": "fastapi", "database": "postgresql", "worker": "celery", "broker": "redis"},
    {"framework": "flask", "database": "postgresql", "worker": "rq", "broker": "redis"},
    {"framework": "django", "database": "postgresql", "worker": "dramatiq", "broker": "rabbitmq"},
]
# Seconds for the worker's spans to arrive once the item is processed: its exporter sends a
# batch every OTEL_BSP_SCHEDULE_DELAY.
SPANS_TIMEOUT = 30


class TracingServices(Services):
    """Services whose traces go to the receiver, every one of them kept."""

    purpose = "tracing"

    def __init__(self, root: Path, installs: Installs, receiver: Receiver) -> None:
        super().__init__(root, installs)
        self.receiver = receiver

    def _install(self, combination: dict[str, str]) -> tuple[Path, dict[str, str]]:
        project, environment = super()._install(combination)
        environment.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=self.receiver.endpoint,
            # Its own name: the services of every combination send to the one receiver.
            OTEL_SERVICE_NAME=f"traced-{combination_id(combination)}",
            OTEL_TRACES_SAMPLER="always_on",
            # Milliseconds between the exporter's batches (the SDK's own variable).
            OTEL_BSP_SCHEDULE_DELAY="200",
        )
        return project, environment


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory, installed: Installs, receiver: Receiver
) -> Iterator[TracingServices]:
    services = TracingServices(tmp_path_factory.mktemp("tracing"), installed, receiver)
    yield services
    services.stop_all()


def ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    """The span's parent, its parent's, ... up to the trace's root."""
    found = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        found.append(span)
    return found


def is_query(span: Span) -> bool:
    return span.kind == "CLIENT" and span.attributes.get("db.system.name") == "postgresql"


@pytest.mark.parametrize("combination", cases(PAIRINGS))
def test_one_trace_from_the_request_through_the_broker_to_the_task(
    services: TracingServices, receiver: Receiver, combination: dict[str, str]
) -> None:
    service = services.start(combination, reachable=True)
    item = service.request("POST", "/items", {"name": "traced", "description": "a trace"}).json()
    path = f"/items/{item['id']}/process"
    assert service.request("POST", path).status == 202
    wait_until_processed(service, item["id"])

    service_name = service.environment["OTEL_SERVICE_NAME"]

    def sent(spans: list[Span]) -> list[Span]:
        return [s for s in spans if s.kind == "PRODUCER" and s.service == service_name]

    spans = receiver.wait_for(sent, SPANS_TIMEOUT)
    assert len(sent(spans)) == 1, [(s.service, s.kind, s.name) for s in spans]
    (producer,) = sent(spans)

    def whole_trace(spans: list[Span]) -> bool:
        trace = [s for s in spans if s.trace_id == producer.trace_id]
        return any(s.kind == "CONSUMER" for s in trace) and sum(map(is_query, trace)) >= 2

    spans = receiver.wait_for(whole_trace, SPANS_TIMEOUT)
    trace = [s for s in spans if s.trace_id == producer.trace_id]
    by_id = {s.span_id: s for s in trace}
    summary = [(s.kind, s.name, s.parent_span_id) for s in trace]

    # The web request: the trace's one SERVER span, its root.
    servers = [s for s in trace if s.kind == "SERVER"]
    assert len(servers) == 1, summary
    (server,) = servers
    assert server.parent_span_id == "", summary
    # Named by the route's template, as the metrics count it, with the answer's status.
    route = "/items/{item_id}/process"
    assert server.name == f"POST {route}", summary
    assert server.attributes["http.route"] == route, server.attributes
    assert server.attributes["http.response.status_code"] == 202, server.attributes
    # The enqueue happens inside the request; the task is the enqueue's child, in the worker.
    assert server in ancestors(producer, by_id), summary
    consumers = [s for s in trace if s.kind == "CONSUMER"]
    assert len(consumers) == 1, summary
    (consumer,) = consumers
    assert consumer.parent_span_id == producer.span_id, summary
    assert "process_item" in producer.name, summary
    assert "process_item" in consumer.name, summary
    assert {server.service, producer.service, consumer.service} == {service_name}
    # SQL on both sides: the request's (reading the item) and the task's (processing it).
    queries = [s for s in trace if is_query(s)]
    web_queries = [q for q in queries if server in ancestors(q, by_id)]
    task_queries = [q for q in queries if consumer in ancestors(q, by_id)]
    assert web_queries, summary
    assert task_queries, summary
    assert all(q.attributes.get("db.query.text") for q in queries), queries

    # The request's log line names the same trace and the span it was written in.
    lines = [json.loads(line) for line in service.log.read_text().splitlines() if line[:1] == "{"]
    request_lines = [
        line for line in lines if line.get("message") == "request" and line.get("path") == path
    ]
    assert len(request_lines) == 1, request_lines
    (request_line,) = request_lines
    assert request_line["trace_id"] == producer.trace_id
    assert request_line["span_id"] in by_id
