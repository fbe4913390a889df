"""One request to the service in a process of its own, for test_tracing.py: OpenTelemetry's
provider is set once per process, and the tests' own process must stay untraced.

`python tests/tracing_probe.py traced` sets traces up first, with an in-memory exporter in
place of OTLP's; `python tests/tracing_probe.py` leaves them as the settings say. Either way
the service starts as it does in production, answers GET /, and its log lines go to stdout;
a last line reports what the SDK recorded.
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


def request_about(settings: Settings) -> None:
    """GET / as the production server's process sets the service up."""
{%- if cookiecutter.framework == "django" %}
    server.setup()
    # As in each server process: wsgi.py instruments the requests once traces are on.
    import {{ cookiecutter.package_name }}.wsgi  # noqa: F401

    Client().get("/")
{%- elif cookiecutter.framework == "fastapi" %}
    TestClient(create_app(settings)).get("/")
{%- elif cookiecutter.framework == "flask" %}
    create_app(settings).test_client().get("/")
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
                "kind": span.kind.name,
                "trace_id": f"{span.context.trace_id:032x}",
                "span_id": f"{span.context.span_id:016x}",
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
