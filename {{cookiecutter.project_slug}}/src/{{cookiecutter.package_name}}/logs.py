{%- from "{#choices.jinja#}" import framework with context -%}
"""Logs as JSON lines on stdout, one object per record, ready for a log collector.

A record written inside a span carries its `trace_id` and `span_id`, as OpenTelemetry
formats them, so a log line leads to its trace (see tracing.py).
"""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# The API only: with traces off it knows no span, and the SDK is never imported.
from opentelemetry import trace

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "color_message"}
_HANDLER_NAME = "json-stdout"
{%- if framework.orm == "sqlalchemy" and cookiecutter.database != "none" %}
# Alembic logs each plugin it sets up as it is imported, at INFO: noise at every start.
_ALEMBIC_PLUGINS = "alembic.runtime.plugins"
{%- endif %}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # A handler formats a record as it is logged, in the logging code's own context.
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = trace.format_trace_id(span.trace_id)
            entry["span_id"] = trace.format_span_id(span.span_id)
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Send every logger's records, the server's and the framework's included, to stdout as
    JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    # Replace only our own handler, so a second call (and pytest's capture) keeps working.
    root.handlers = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level)
{%- if framework.orm == "sqlalchemy" and cookiecutter.database != "none" %}
    logging.getLogger(_ALEMBIC_PLUGINS).setLevel(max(logging.WARNING, root.level))
{%- endif %}
