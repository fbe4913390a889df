{%- from "{#choices.jinja#}" import framework, database with context -%}
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.settings import (
    SECRET_PLACEHOLDER,
    Settings,
    describe,
)

PROJECT = Path(__file__).parent.parent
PACKAGE = "{{ cookiecutter.package_name }}"
{%- if cookiecutter.database == "sqlite" %}
VALID = {"DATABASE_URL": "sqlite:///app.db"}
{%- elif database.server %}
VALID = {"DATABASE_URL": "{{ cookiecutter.database }}://user:password@db.example:{{ database.port }}/app"}
{%- elif cookiecutter.database == "none" %}
VALID: dict[str, str] = {}
{%- endif %}
{%- if cookiecutter.worker != "none" and cookiecutter.broker == "redis" %}
VALID["BROKER_URL"] = "redis://:password@redis.example:6379/0"
{%- elif cookiecutter.worker != "none" %}
VALID["BROKER_URL"] = "amqp://user:password@rabbitmq.example:5672/%2F"
{%- endif %}
REAL_SECRET = "s" * 32


def load(monkeypatch: pytest.MonkeyPatch, **variables: str | None) -> Settings:
    """Settings from exactly these environment variables (None: unset), no .env."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in {**VALID, **variables}.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def error_of(monkeypatch: pytest.MonkeyPatch, **variables: str | None) -> str:
    with pytest.raises(ValidationError) as raised:
        load(monkeypatch, **variables)
    return describe(raised.value)


def test_defaults_are_production(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, SECRET_KEY=REAL_SECRET)
    assert settings.environment == "production"
    assert (settings.port, settings.web_concurrency, settings.log_level) == (8000, 1, "INFO")


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(
        monkeypatch,
        ENVIRONMENT="staging",
        SECRET_KEY=REAL_SECRET,
        LOG_LEVEL="debug",
        HOST="127.0.0.1",
        PORT="9000",
        WEB_CONCURRENCY="4",
    )
    assert settings.environment == "staging"
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == REAL_SECRET
    assert (settings.log_level, settings.host) == ("DEBUG", "127.0.0.1")
    assert (settings.port, settings.web_concurrency) == (9000, 4)
{%- if cookiecutter.framework == "django" %}


def test_allowed_hosts_are_any_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch, ENVIRONMENT="development").allowed_hosts == ["*"]


def test_allowed_hosts_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, ENVIRONMENT="development", ALLOWED_HOSTS=" a.example, .c.example,")
    assert settings.allowed_hosts == ["a.example", ".c.example"]


def test_allowed_hosts_must_not_be_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_of(monkeypatch, ENVIRONMENT="development", ALLOWED_HOSTS=" , ")
    assert message.startswith("invalid configuration: ALLOWED_HOSTS: ")
{%- endif %}
{%- if database.server %}
{%- set urls = database.urls[framework.orm] %}
{%- if framework.orm == "django" %}


@pytest.mark.parametrize("scheme", {{ urls.schemes | tojson }})
def test_database_url_has_one_scheme(monkeypatch: pytest.MonkeyPatch, scheme: str) -> None:
    settings = load(monkeypatch, ENVIRONMENT="development", DATABASE_URL=f"{scheme}://u@h/db")
    assert settings.database_url == "{{ urls.driver }}://u@h/db"
{%- elif framework.orm == "sqlalchemy" %}


@pytest.mark.parametrize("scheme", {{ urls.schemes | tojson }})
def test_database_url_uses_the_installed_driver(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    settings = load(monkeypatch, ENVIRONMENT="development", DATABASE_URL=f"{scheme}://u@h/db")
    assert settings.database_url == "{{ urls.driver }}://u@h/db"
{%- endif %}
{%- endif %}
{%- if cookiecutter.database != "none" %}


def test_database_url_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_of(monkeypatch, ENVIRONMENT="development", DATABASE_URL=None)
    assert message == "invalid configuration: DATABASE_URL: Field required"


def test_database_url_of_another_database_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_of(monkeypatch, ENVIRONMENT="development", DATABASE_URL="oracle://u:p@h/db")
    assert "DATABASE_URL: must be a URL starting with" in message
    assert "u:p" not in message
{%- endif %}
{%- if cookiecutter.worker != "none" %}


def test_broker_url_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_of(monkeypatch, ENVIRONMENT="development", BROKER_URL=None)
    assert message == "invalid configuration: BROKER_URL: Field required"


def test_broker_url_of_another_broker_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
{%- if cookiecutter.broker == "redis" %}
    other = "amqp://u:p@h:5672/%2F"
{%- elif cookiecutter.broker == "rabbitmq" %}
    other = "redis://u:p@h:6379/0"
{%- endif %}
    message = error_of(monkeypatch, ENVIRONMENT="development", BROKER_URL=other)
    assert "BROKER_URL: must be a URL starting with" in message
    assert "u:p" not in message


@pytest.mark.parametrize("queue", ["", "has space", "a/b", "q" * 101])
def test_worker_queue_must_be_a_plain_name(monkeypatch: pytest.MonkeyPatch, queue: str) -> None:
    message = error_of(monkeypatch, ENVIRONMENT="development", WORKER_QUEUE=queue)
    assert message.startswith("invalid configuration: WORKER_QUEUE: ")


def test_the_heartbeat_file_is_this_projects_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every service on a host shares /tmp: another project's worker must not vouch for this one.
    project = "{{ cookiecutter.project_slug }}"
    heartbeat = load(monkeypatch, ENVIRONMENT="development").worker_heartbeat_file
    assert heartbeat.name == f"{project}-worker-heartbeat"
{%- endif %}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENVIRONMENT", "prod"),
        ("LOG_LEVEL", "LOUD"),
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("WEB_CONCURRENCY", "0"),
    ],
)
def test_malformed_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    message = error_of(monkeypatch, SECRET_KEY=REAL_SECRET, **{variable: value})
    assert message.startswith(f"invalid configuration: {variable}: ")
    assert repr(value) in message


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize("secret", [None, SECRET_PLACEHOLDER, "too-short"])
def test_outside_development_a_real_secret_is_required(
    monkeypatch: pytest.MonkeyPatch, environment: str, secret: str | None
) -> None:
    message = error_of(monkeypatch, ENVIRONMENT=environment, SECRET_KEY=secret)
    assert message.startswith("invalid configuration: SECRET_KEY: ")
    assert SECRET_PLACEHOLDER not in message.split(": ", 2)[-1]


def test_error_reports_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, SECRET_KEY=REAL_SECRET)
    assert settings.sentry_dsn.get_secret_value() == ""


def test_a_sentry_dsn_is_read_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = "https://0123456789abcdef@o1.ingest.sentry.example/42"
    settings = load(monkeypatch, SECRET_KEY=REAL_SECRET, SENTRY_DSN=dsn)
    assert settings.sentry_dsn.get_secret_value() == dsn
    assert "0123456789abcdef" not in repr(settings)


@pytest.mark.parametrize(
    "dsn",
    ["0123456789abcdef", "ftp://0123456789abcdef@sentry.example/1", "https://sentry.example/1"],
)
def test_a_malformed_sentry_dsn_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    message = error_of(monkeypatch, SECRET_KEY=REAL_SECRET, SENTRY_DSN=dsn)
    assert message.startswith("invalid configuration: SENTRY_DSN: must be empty")
    assert "0123456789abcdef" not in message


@pytest.mark.parametrize("environment", ["development", "test"])
def test_in_development_the_placeholder_secret_is_accepted(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    settings = load(monkeypatch, ENVIRONMENT=environment, SECRET_KEY=SECRET_PLACEHOLDER)
    assert settings.environment == environment


def test_service_refuses_to_start_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    environment = {**os.environ, **VALID, "ENVIRONMENT": "production", "PORT": "eighty"}
    environment.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", PACKAGE, "serve"],
        cwd=tmp_path,  # no .env here
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET_KEY: must be set to a real secret" in lines[0]
    assert "PORT: Input should be a valid integer" in lines[0]


def test_env_example_and_readme_list_every_setting() -> None:
    variables = {name.upper() for name in Settings.model_fields}
    example = (PROJECT / ".env.example").read_text()
    readme = (PROJECT / "README.md").read_text()
    assert set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE)) == variables
    assert set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.MULTILINE)) == variables
