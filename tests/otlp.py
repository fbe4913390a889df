"""An OTLP/HTTP receiver of traces, as a collector runs one: it takes the protobuf
`ExportTraceServiceRequest`s a service's exporter posts to /v1/traces, decodes them with
OpenTelemetry's own protocol package (opentelemetry-proto) and keeps their spans.
See https://opentelemetry.io/docs/specs/otlp/#otlphttp
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class Span:
    """A received span, its ids as hex, as log lines and W3C's traceparent write them."""

    service: str
    scope: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any] = field(hash=False)


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        service=resource.get("service.name", ""),
                        scope=scope_spans.scope.name,
                        name=span.name,
                        # SPAN_KIND_SERVER -> SERVER
                        kind=ProtoSpan.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={a.key: value_of(a.value) for a in span.attributes},
                    )
                )
    return spans


class Receiver:
    """An OTLP/HTTP receiver on a free local port, collecting every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != TRACES_PATH or self.headers.get("Content-Type") != PROTOBUF:
                    self.send_error(404 if self.path != TRACES_PATH else 415)
                    return
                request = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    receiver.spans.extend(spans_of(request))
                    receiver.requests += 1
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", PROTOBUF)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass  # quiet: the test reports what it received

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """OTEL_EXPORTER_OTLP_ENDPOINT for a service: the exporter adds /v1/traces."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self) -> list[Span]:
        with self.lock:
            return list(self.spans)

    def wait_for(self, found: Any, timeout: float) -> list[Span]:
        """The spans received once `found(spans)` is true, or all of them at the timeout."""
        deadline = time.monotonic() + timeout
        while not found(spans := self.received()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return spans
