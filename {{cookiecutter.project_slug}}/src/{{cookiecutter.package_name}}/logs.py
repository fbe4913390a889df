{%- from "{#choices.jinja#}" import framework with context -%}
"""Logs as JSON lines on stdout, one object per record, ready for a log collector."""

import json
import logging
import sys
import time
{%- if cookiecutter.framework == "django" %}
from collections.abc import Callable
{%- endif %}
from datetime import UTC, datetime
from typing import Any

{% if cookiecutter.framework == "fastapi" -%}
from starlette.types import ASGIApp, Message, Receive, Scope, Send
{%- elif cookiecutter.framework == "flask" -%}
from flask import Flask, Response, g, request
{%- else -%}
from django.http import HttpRequest, HttpResponseBase
{%- endif %}

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "color_message"}
_HANDLER_NAME = "json-stdout"

logger = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Send every logger's records, {{ framework.server }}'s included, to stdout as JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    # Replace only our own handler, so a second call (and pytest's capture) keeps working.
    root.handlers = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level)
{%- if cookiecutter.framework == "fastapi" %}
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # RequestLogMiddleware logs each request with its duration instead.
    logging.getLogger("uvicorn.access").disabled = True
{%- elif cookiecutter.framework == "django" %}
    # RequestLogMiddleware logs each request; the development server's access log would
    # repeat it.
    logging.getLogger("django.server").disabled = True
{%- endif %}
{%- if cookiecutter.framework == "fastapi" %}


class RequestLogMiddleware:
    """Log one line per HTTP request: method, path, status and duration.

    A plain ASGI middleware rather than BaseHTTPMiddleware, which costs a task per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app fails before it answers

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                },
            )
{%- elif cookiecutter.framework == "django" %}


class RequestLogMiddleware:
    """Log one line per HTTP request: method, path, status and duration.

    First in MIDDLEWARE: Django turns every failure into a response before it gets here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        start = time.perf_counter()
        response = self.get_response(request)
        logger.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - start) * 1000, 2),
            },
        )
        return response
{%- else %}


def log_requests(app: Flask) -> None:
    """Log one line per HTTP request: method, path, status and duration.

    Error handlers turn every failure into a response, so the after-request hook sees them all.
    """
    app.before_request(_start_clock)
    app.after_request(_log_request)


def _start_clock() -> None:
    g.request_start = time.perf_counter()


def _log_request(response: Response) -> Response:
    start = g.get("request_start", time.perf_counter())
    logger.info(
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - start) * 1000, 2),
        },
    )
    return response
{%- endif %}
