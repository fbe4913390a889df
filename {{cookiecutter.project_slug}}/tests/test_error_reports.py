"""Error reports: an unhandled error of a request reaches Sentry (a stand-in server that
takes what the SDK sends, sentry_server.py) with the service's environment and release, and
nothing of the request that may identify its user or carry a secret; without SENTRY_DSN the
SDK is not even loaded."""

{% if cookiecutter.framework == "django" -%}
import io
import json
{% endif -%}
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
{%- if cookiecutter.framework == "django" %}
from typing import Any
{%- endif %}

import pytest
import sentry_sdk
{%- if cookiecutter.framework == "django" %}
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
{%- elif cookiecutter.framework == "fastapi" %}
from fastapi.testclient import TestClient
{%- elif cookiecutter.framework == "flask" %}
from flask.testing import FlaskClient
{%- endif %}
from pydantic import SecretStr

import sentry_server
{%- if cookiecutter.framework == "django" %}
from {{ cookiecutter.package_name }} import urls, wsgi
from {{ cookiecutter.package_name }}.settings import get_settings
{%- elif cookiecutter.framework == "fastapi" %}
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings
{%- elif cookiecutter.framework == "flask" %}
from {{ cookiecutter.package_name }}.settings import Settings
{%- endif %}

PROJECT = Path(__file__).parent.parent
PACKAGE = "{{ cookiecutter.package_name }}"
NAME = "{{ cookiecutter.project_slug }}"
# A path only these tests route, to a view that fails.
FAILING_PATH = "/error-report-test"
# What a request may carry that no report may: each value is looked for in all that was sent.
SECRETS = {
    "body": "body-secret-4f1c",
    "cookie": "cookie-secret-9a2e",
    "authorization": "bearer-secret-7d3b",
    "query": "query-secret-2c8f",
}
# A DSN where nothing listens: no error happens, so nothing is sent there.
UNUSED_DSN = "http://public@127.0.0.1:9/1"
# The modules a process holds once it has built the app, then once error reports are set up
# with a DSN.
FACTORY = f"""
import sys
from pydantic import SecretStr
from {PACKAGE} import error_reports
from {PACKAGE}.settings import Settings
{%- if cookiecutter.framework == "django" %}
import {PACKAGE}.wsgi
{%- elif cookiecutter.framework in ("fastapi", "flask") %}
from {PACKAGE}.app import create_app
create_app()
{%- endif %}
print(*sys.modules)
error_reports.setup(Settings(sentry_dsn=SecretStr("{UNUSED_DSN}")), "web")
print(*sys.modules)
"""


class ErrorReportTestError(Exception):
    """What the failing view raises: a name no other error has."""


@pytest.fixture
def sentry() -> Iterator[sentry_server.SentryServer]:
    server = sentry_server.SentryServer()
    yield server
    # The SDK is set up for the whole test process: undo it for the next tests.
    sentry_sdk.flush(timeout=5)
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    sentry_sdk.get_global_scope().remove_tag("component")
    server.close()
{%- if cookiecutter.framework == "django" %}


def fail(_request: HttpRequest) -> HttpResponse:
    raise ErrorReportTestError("the view failed")


# These tests' URLs (pytest.mark.urls): the service's, and the failing view. The error views
# are the service's too.
urlpatterns = [path(FAILING_PATH.removeprefix("/"), csrf_exempt(fail)), *urls.urlpatterns]
handler500 = urls.handler500


def failing_request() -> dict[str, Any]:
    """A WSGI request to the failing view, carrying every kind of secret."""
    body = json.dumps({"password": SECRETS["body"]}).encode()
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": FAILING_PATH,
        "QUERY_STRING": f"token={SECRETS['query']}",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_COOKIE": f"session={SECRETS['cookie']}",
        "HTTP_AUTHORIZATION": f"Bearer {SECRETS['authorization']}",
        "HTTP_USER_AGENT": "error-report-test",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


@pytest.mark.urls(__name__)
{%- if cookiecutter.database != "none" %}
# The request's end closes the database connections a test before may have left open.
@pytest.mark.django_db
{%- endif %}
def test_an_unhandled_error_is_reported_without_the_requests_secrets(
    sentry: sentry_server.SentryServer,
) -> None:
    # The application as its servers build it (wsgi.py), with error reports on.
    settings = get_settings().model_copy(
        update={"environment": "test", "sentry_dsn": SecretStr(sentry.dsn)}
    )
    application = wsgi.create_application(settings)
    statuses: list[str] = []
    response = application(failing_request(), lambda status, _headers: statuses.append(status))
    b"".join(response)
    assert statuses == ["500 Internal Server Error"]

    sentry_sdk.flush(timeout=10)
    assert_one_report_without_secrets(sentry)
{%- elif cookiecutter.framework in ("fastapi", "flask") %}


@pytest.fixture
def settings(settings: Settings, sentry: sentry_server.SentryServer) -> Settings:
    """The tests' settings, with error reports on{% if cookiecutter.framework == "flask" %}: the `client` of conftest.py uses them{% endif %}."""
    return settings.model_copy(update={"sentry_dsn": SecretStr(sentry.dsn)})


def fail() -> None:
    raise ErrorReportTestError("the view failed")
{%- if cookiecutter.framework == "fastapi" %}


def test_an_unhandled_error_is_reported_without_the_requests_secrets(
    settings: Settings, sentry: sentry_server.SentryServer
) -> None:
    app = create_app(settings)
    app.add_api_route(FAILING_PATH, fail, methods=["POST"])
    # The error answered as the service answers it, not raised into the test.
    cookies = {"session": SECRETS["cookie"]}
    with TestClient(app, raise_server_exceptions=False, cookies=cookies) as client:
        response = client.post(
            FAILING_PATH,
            params={"token": SECRETS["query"]},
            json={"password": SECRETS["body"]},
            headers={"Authorization": f"Bearer {SECRETS['authorization']}"},
        )
{%- elif cookiecutter.framework == "flask" %}


def test_an_unhandled_error_is_reported_without_the_requests_secrets(
    client: FlaskClient, sentry: sentry_server.SentryServer
) -> None:
    client.application.add_url_rule(FAILING_PATH, view_func=fail, methods=["POST"])
    client.set_cookie("session", SECRETS["cookie"])
    response = client.post(
        FAILING_PATH,
        query_string={"token": SECRETS["query"]},
        json={"password": SECRETS["body"]},
        headers={"Authorization": f"Bearer {SECRETS['authorization']}"},
    )
{%- endif %}
    assert response.status_code == 500

    sentry_sdk.flush(timeout=10)
    assert_one_report_without_secrets(sentry)
{%- endif %}


def assert_one_report_without_secrets(sentry: sentry_server.SentryServer) -> None:
    events = sentry.wait_for_events(1)
    assert len(events) == 1, events
    (event,) = events
    assert event["environment"] == "test"
    assert event["release"] == f"{NAME}@{version(NAME)}"
    assert event["tags"]["component"] == "web"
    exceptions = event["exception"]["values"]
    assert exceptions[-1]["type"] == ErrorReportTestError.__name__
    # The request: its method and path, and none of what may carry a secret.
    request = event["request"]
    assert request["method"] == "POST"
    assert request["url"].endswith(FAILING_PATH)
    assert not request.get("data")
    assert not request.get("cookies")
    assert not request.get("query_string")
    # No frame's local variables.
    assert all("vars" not in frame for frame in exceptions[-1]["stacktrace"]["frames"])
    received = sentry.received().decode()
    for where, secret in SECRETS.items():
        assert secret not in received, where


def modules_loaded_by_the_app_factory() -> tuple[set[str], set[str]]:
    """The modules loaded by the app built without SENTRY_DSN, then with error reports set up."""
    environment = {**os.environ, "ENVIRONMENT": "test", "SENTRY_DSN": ""}
    result = subprocess.run(
        [sys.executable, "-c", FACTORY],
        env=environment,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    built, set_up = result.stdout.splitlines()
    return set(built.split()), set(set_up.split())


def test_without_a_dsn_the_sdk_is_not_even_loaded() -> None:
    built, set_up = modules_loaded_by_the_app_factory()
    assert f"{PACKAGE}.error_reports" in built
    assert "sentry_sdk" not in built
    # Set up with a DSN, the same process loads it: the check above can fail.
    assert "sentry_sdk" in set_up
