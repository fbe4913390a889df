{%- from "{#choices.jinja#}" import framework with context -%}
{%- set queries = cookiecutter.database != "none" -%}
{%- set sqlalchemy_queries = queries and framework.orm == "sqlalchemy" -%}
{%- set django_queries = queries and framework.orm == "django" -%}
{%- set messages = cookiecutter.worker != "none" -%}
{%- set abc = (["Callable"] if queries else []) + (["Iterator", "Mapping"] if messages else []) -%}
"""Traces (OpenTelemetry), sent to a collector over OTLP/HTTP: off unless an endpoint is set.

{% if messages -%}
Each process that serves or works sets the SDK up as it starts (`configure_tracing`), after
any fork: the server's processes build the application there, the worker's processes on
their start. Until then, and for good while no endpoint is set, spans are the API's no-op
ones: the SDK's tracing is never imported, and an unconfigured service pays nothing for
them.
{%- else -%}
Each of the server's processes sets the SDK up as it starts (`configure_tracing`), after any
fork, where it builds the application. Until then, and for good while no endpoint is set,
spans are the API's no-op ones: the SDK's tracing is never imported, and an unconfigured
service pays nothing for them.
{%- endif %}

The settings read OpenTelemetry's own variables (OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...), so `.env` sets them too, and this module hands
them to the SDK. Its other variables (OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT,
OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*) the SDK reads from the process environment itself.
See https://opentelemetry.io/docs/languages/python/
"""

from __future__ import annotations

{% if abc -%}
from collections.abc import {{ abc | join(", ") }}
{% endif -%}
{% if messages -%}
from contextlib import contextmanager
{% endif -%}
from typing import TYPE_CHECKING{% if queries or messages %}, Any{% endif %}, Protocol

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
{%- if django_queries %}
    from django.db.backends.base.base import BaseDatabaseWrapper
{%- endif %}
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
{%- if sqlalchemy_queries %}
    from sqlalchemy import Engine
{%- endif %}

    from .settings import Settings

# The API's tracer: it hands spans to the SDK's provider once one is set, else makes none.
tracer = trace.get_tracer(__name__)
_provider: TracerProvider | None = None
{%- if messages %}
# The messaging system, as spans name it.
MESSAGING_SYSTEM = "{{ cookiecutter.worker }}"
{%- endif %}


def traces_endpoint(settings: Settings) -> str:
    """Where spans go: the traces' own URL, else the endpoint's /v1/traces (as the SDK
    derives it); empty while traces are off."""
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    if settings.otel_exporter_otlp_endpoint:
        return settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    return ""


def configure_tracing(settings: Settings, exporter: SpanExporter | None = None) -> bool:
    """Set the SDK up in this process, once, if an endpoint is set; True while traces are on.

    `exporter` stands in for the OTLP exporter (the tests' in-memory one).
    """
    global _provider  # one provider per process, as OpenTelemetry's global one
    if _provider is not None:
        return True
    endpoint = traces_endpoint(settings)
    if not endpoint and exporter is None:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.otel_service_name}),
        sampler=sampler(settings.otel_traces_sampler, settings.otel_traces_sampler_arg),
    )
    # Spans are sent in batches, from a thread of the SDK's, off the requests' path.
    provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _provider = provider
{%- if django_queries %}
    trace_django_queries()
{%- endif %}
    return True


def sampler(name: str, ratio: float) -> Sampler:
    """OpenTelemetry's sampler of that name (OTEL_TRACES_SAMPLER), keeping `ratio` of the
    traces where it keeps a share."""
    from opentelemetry.sdk.trace import sampling

    samplers: dict[str, Sampler] = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBasedTraceIdRatio(ratio),
    }
    return samplers[name]
{%- if cookiecutter.framework == "django" %}


def enabled() -> bool:
    """True once the SDK is set up in this process (configure_tracing)."""
    return _provider is not None
{%- endif %}


def flush_spans() -> None:
    """Send the spans ended so far: before a process exits without Python's exit handlers."""
    if _provider is not None:
        _provider.force_flush()


def shutdown_tracing() -> None:
    """Send the last spans and stop the SDK's thread (also done at exit)."""
    if _provider is not None:
        _provider.shutdown()


class Headers(Protocol):
    """A request's headers, looked up by name in any case: the caller's trace is in them."""

    def get(self, key: str) -> str | None: ...


class ServerSpan:
    """The SERVER span of one request, current from the request's start to its answer: in
    the caller's trace when the request's headers carry one (W3C's traceparent).

    The service's own, rather than an instrumentation library's: those cost about 0.1 ms of
    CPU a request even when the sampler keeps no trace, as they gather every attribute first
    (the query string, which may carry a secret, among them). This one carries what the
    service's own telemetry knows: method, path, route and status.
    """

    def __init__(self, method: str, path: str, headers: Headers) -> None:
        self.method = method
        self.span = tracer.start_span(
            method,
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        self._token = context.attach(trace.set_span_in_context(self.span))

    def end(self, route: str | None, status: int) -> None:
        """End it, named by its method and route template (`GET /items/{item_id}`) where the
        request matched one; an error if the answer was."""
        if route is not None:
            self.span.update_name(f"{self.method} {route}")
            self.span.set_attribute("http.route", route)
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()
        context.detach(self._token)
{%- if queries %}


def operation(statement: str) -> str:
    """A query span's name: the statement's first word (SELECT, INSERT, ...)."""
    words = statement.split(maxsplit=1)
    return words[0].upper() if words else "query"


def query_attributes(system: str, statement: str) -> dict[str, str]:
    # The statement as sent, with its placeholders: the values never reach the span.
    return {"db.system.name": system, "db.query.text": statement}


def in_a_dropped_trace() -> bool:
    """Whether the current span is of a trace the sampler did not keep. Its queries get no
    span: the parent-based samplers would drop each one, after the work of starting it."""
    current = trace.get_current_span().get_span_context()
    return current.is_valid and not current.trace_flags.sampled
{%- endif %}
{%- if sqlalchemy_queries %}


# Around the engine's dialect, which runs every statement, rather than OpenTelemetry's
# SQLAlchemy instrumentation (it declares no support for SQLAlchemy 2.1, and patches every
# engine and connection checkout) or SQLAlchemy's cursor events (with any listener, each
# request costs about 8 % more, traced or not: bench/instructions.py).
DIALECT_EXECUTES = ("do_execute", "do_executemany", "do_execute_no_params")


def trace_queries(engine: Engine) -> None:
    """A CLIENT span for each statement the engine runs, while traces are on."""
    if _provider is None:
        return
    dialect = engine.dialect
    for name in DIALECT_EXECUTES:
        setattr(dialect, name, traced(getattr(dialect, name), dialect.name))


def traced(execute: Callable[..., Any], system: str) -> Callable[..., Any]:
    """The dialect's execute, in a span named by the statement (its error recorded)."""

    def execute_in_a_span(cursor: Any, statement: str, *arguments: Any) -> Any:
        if in_a_dropped_trace():
            return execute(cursor, statement, *arguments)
        with tracer.start_as_current_span(
            operation(statement),
            kind=SpanKind.CLIENT,
            attributes=query_attributes(system, statement),
        ):
            return execute(cursor, statement, *arguments)

    return execute_in_a_span
{%- elif django_queries %}


# Django's own hook around every query (execute_wrapper), on each connection it opens,
# rather than an instrumentation of each database driver.
def trace_django_queries() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(add_query_spans, dispatch_uid=__name__)


def add_query_spans(sender: object, connection: BaseDatabaseWrapper, **_kwargs: object) -> None:
    if query_span not in connection.execute_wrappers:
        connection.execute_wrappers.append(query_span)


def query_span(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """A CLIENT span around one query of a Django connection."""
    if in_a_dropped_trace():
        return execute(sql, params, many, context)
    system = context["connection"].vendor
    with tracer.start_as_current_span(
        operation(sql), kind=SpanKind.CLIENT, attributes=query_attributes(system, sql)
    ):
        return execute(sql, params, many, context)
{%- endif %}
{%- if messages %}


@contextmanager
def sending(task: str, queue: str) -> Iterator[dict[str, str]]:
    """A PRODUCER span around handing a task to the broker. Yields the headers that carry
    its context (W3C's traceparent), to send with the message; none while traces are off."""
    with tracer.start_as_current_span(
        f"send {task}", kind=SpanKind.PRODUCER, attributes=messaging("send", queue)
    ):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield headers


@contextmanager
def running(task: str, queue: str, headers: Mapping[str, Any]) -> Iterator[None]:
    """A CONSUMER span around running a task, in the trace of the span that sent it."""
    with tracer.start_as_current_span(
        f"process {task}",
        context=propagate.extract(headers),
        kind=SpanKind.CONSUMER,
        attributes=messaging("process", queue),
    ):
        yield


def messaging(operation_type: str, queue: str) -> dict[str, str]:
    return {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": operation_type,
        "messaging.destination.name": queue,
    }
{%- endif %}
