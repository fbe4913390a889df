"""One request to the service in a process of its own, for test_tracing.py: OpenTelemetry's
provider is set once per process, and the tests' own process must stay untraced.

`python tests/tracing_probe.py traced` sets traces up first, with an in-memory exporter in
place of OTLP's; `python tests/tracing_probe.py` leaves them as the settings say. Either way
the service starts as it does in production, answers GET / from a caller whose trace the
request carries (W3C's traceparent), and its log lines go to stdout; a last line reports what
the SDK recorded.
"""

import json
import sys
{%- if cookiecutter.framework == "django" %}

from django.test import Client
from opentelemetry import trace

from {{ cookiecutter.package_name }} import server, tracing
from {{ cookiecutter.package_name }}.settings import Settings
{%- elif cookiecutter.framework == "fastapi" %}

from fastapi.testclient import TestClient
from opentelemetry import trace

from {{ cookiecutter.package_name }} import tracing
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings
{%- elif cookiecutter.framework == "flask" %}

from opentelemetry import trace

from {{ cookiecutter.package_name }} import tracing
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings
{%- endif %}

REPORT = "probe"
# The caller's trace and span, as its traceparent header names them.
CALLER_TRACE_ID = "5e1f0c2a9b3d4e6f8a7b6c5d4e3f2a1b"
CALLER_SPAN_ID = "1a2b3c4d5e6f7a8b"
CALLER = {"traceparent": f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"}


def request_about(settings: Settings) -> None:
    """GET / as the production server's process sets the service up."""
{%- if cookiecutter.framework == "django" %}
    server.setup()
    # As in each server process: wsgi.py instruments the requests once traces are on.
    import {{ cookiecutter.package_name }}.wsgi  # noqa: F401

    Client().get("/", headers=CALLER)
{%- elif cookiecutter.framework == "fastapi" %}
    TestClient(create_app(settings)).get("/", headers=CALLER)
{%- elif cookiecutter.framework == "flask" %}
    create_app(settings).test_client().get("/", headers=CALLER)
{%- endif %}


def main(mode: str) -> None:
    # Every trace kept: the default keeps a share of them.
    settings = Settings(environment="test", otel_traces_sampler="always_on")
    spans = []
    if mode == "traced":
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        tracing.configure_tracing(settings, exporter)
    request_about(settings)
    if mode == "traced":
        tracing.flush_spans()
        spans = [
            {
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": f"{span.context.trace_id:032x}",
                "span_id": f"{span.context.span_id:016x}",
                "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else "",
                "attributes": dict(span.attributes or {}),
            }
            for span in exporter.get_finished_spans()
            if span.context is not None
        ]
    provider = type(trace.get_tracer_provider()).__name__
    # The SDK's traces, that is: a client library may import its metrics (redis-py does).
    sdk = "opentelemetry.sdk.trace" in sys.modules
    print(json.dumps({REPORT: {"provider": provider, "sdk_imported": sdk, "spans": spans}}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "as configured")
