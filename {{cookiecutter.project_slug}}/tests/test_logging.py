import json
import logging
import sys

import pytest
{%- if cookiecutter.framework == "fastapi" %}
from fastapi.testclient import TestClient
{%- elif cookiecutter.framework == "flask" %}
from flask.testing import FlaskClient
{%- elif cookiecutter.framework == "django" %}
from django.test import Client
{%- endif %}

from {{ cookiecutter.package_name }} import logs


def test_one_record_per_request_with_method_path_status_and_duration(
    client: {{ {"fastapi": "TestClient", "flask": "FlaskClient", "django": "Client"}[cookiecutter.framework] }}, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        client.get("/health/live")
        client.get("/no-such-path")
    requests = [record for record in caplog.records if record.getMessage() == "request"]
    assert [(r.method, r.path, r.status) for r in requests] == [
        ("GET", "/health/live", 200),
        ("GET", "/no-such-path", 404),
    ]
    assert all(r.duration_ms >= 0 for r in requests)


def test_records_are_json_lines_with_their_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "app", "levelname": "INFO", "msg": "request", "method": "GET", "status": 200}
    )
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "request"
    assert (entry["level"], entry["logger"]) == ("INFO", "app")
    assert (entry["method"], entry["status"]) == ("GET", 200)
    assert entry["time"].endswith("+00:00")


def test_exceptions_are_kept_inside_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "app", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    entry = json.loads(logs.JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
