"""A stand-in for Sentry, for the error reports' tests: an HTTP server on a free port of the
loopback that takes the envelopes the SDK posts to /api/<project>/envelope/, as Sentry does,
and keeps what they hold.

An envelope is a line of JSON (its header), then items: each a line of JSON (the item's
header, with its payload's length where the payload may hold newlines) and the payload.
See https://develop.sentry.dev/sdk/data-model/envelopes/
"""

import gzip
import importlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROJECT = "1"
ENVELOPE_PATH = re.compile(r"^/api/(?P<project>\d+)/envelope/$")


def decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        # The SDK uses brotli where the module is installed, gzip otherwise.
        return importlib.import_module("brotli").decompress(body)  # type: ignore[no-any-return]
    return body


def envelope_items(envelope: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """The items of an envelope: (header, payload) each."""
    _header, _, rest = envelope.partition(b"\n")
    items = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


class SentryServer:
    """Sentry's envelope endpoint for one project: its DSN, the raw envelopes and the events
    they held."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server.server_port}/{PROJECT}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        sentry = self

        class EnvelopeHandler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                match = ENVELOPE_PATH.match(self.path)
                if match is None or match["project"] != PROJECT:
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers["Content-Length"]))
                envelope = decompress(body, self.headers.get("Content-Encoding", ""))
                events = [
                    json.loads(payload)
                    for header, payload in envelope_items(envelope)
                    if header["type"] == "event"
                ]
                with sentry.lock:
                    sentry.envelopes.append(envelope)
                    sentry.events.extend(events)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet: the tests say what they saw."""

        return EnvelopeHandler

    def wait_for_events(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        """The events received, once there are at least count (fewer after the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= count:
                    break
            time.sleep(0.05)
        with self.lock:
            return list(self.events)

    def received_events(self) -> list[dict[str, Any]]:
        """The events received so far."""
        with self.lock:
            return list(self.events)

    def received(self) -> bytes:
        """Every envelope received, as one text to search."""
        with self.lock:
            return b"\n".join(self.envelopes)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
