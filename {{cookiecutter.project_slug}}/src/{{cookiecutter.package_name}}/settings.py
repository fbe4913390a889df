{%- from "{#choices.jinja#}" import framework, database, worker with context -%}
"""The service's configuration: every setting comes from the environment.

Variables are read from the process environment, then from a `.env` file in the working
directory for local development; the environment wins. `.env.example` lists them all.
See https://docs.pydantic.dev/latest/concepts/pydantic_settings/
"""

from functools import lru_cache
{%- if cookiecutter.worker != "none" %}
from pathlib import Path
{%- endif %}
{%- if cookiecutter.framework == "django" %}
from typing import Annotated, Literal
{%- elif cookiecutter.framework in ("fastapi", "flask") %}
from typing import Literal
{%- endif %}

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
{%- if cookiecutter.framework == "django" %}
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
{%- elif cookiecutter.framework in ("fastapi", "flask") %}
from pydantic_settings import BaseSettings, SettingsConfigDict
{%- endif %}

# The value .env.example gives every secret. It is accepted only in development and test.
SECRET_PLACEHOLDER = "change-me"  # noqa: S105 - not a secret: the value refused as one
MIN_SECRET_LENGTH = 32
# Never echoed back in an error message: they hold credentials.
{%- if cookiecutter.worker != "none" %}
SENSITIVE_VARIABLES = frozenset({"SECRET_KEY", "SENTRY_DSN", "DATABASE_URL", "BROKER_URL"})
{%- elif cookiecutter.database != "none" %}
SENSITIVE_VARIABLES = frozenset({"SECRET_KEY", "SENTRY_DSN", "DATABASE_URL"})
{%- else %}
SENSITIVE_VARIABLES = frozenset({"SECRET_KEY", "SENTRY_DSN"})
{%- endif %}
{%- if cookiecutter.database != "none" %}
{%- set urls = database.urls[framework.orm] %}

{% if urls.note -%}
# {{ urls.note }}
{% endif -%}
DATABASE_DRIVER = "{{ urls.driver }}"
DATABASE_SCHEMES = ({{ urls.schemes | map("tojson") | join(", ") }}{{ "," if urls.schemes | length == 1 }})
{%- endif %}
{%- if cookiecutter.worker != "none" and cookiecutter.broker == "redis" %}
BROKER_SCHEMES = ("redis", "rediss")
{%- elif cookiecutter.worker != "none" %}
BROKER_SCHEMES = ("amqp", "amqps")
{%- endif %}
{%- if cookiecutter.worker != "none" %}
# Queue names (and, on Redis, key prefixes): letters, digits, '.', '_' and '-'.
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"
DEFAULT_QUEUE = "{{ cookiecutter.package_name }}"
# One worker per container: a fixed path its liveness probe knows. Named after the project:
# every service on a development host shares /tmp, and no worker may vouch for another's.
DEFAULT_HEARTBEAT_FILE = Path(
    "/tmp/{{ cookiecutter.project_slug }}-worker-heartbeat"  # noqa: S108
)
{%- endif %}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Declared first: the secret's check depends on it.
    environment: Literal["development", "test", "staging", "production"] = "production"
    secret_key: SecretStr | None = Field(default=None, validate_default=True)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    host: str = "0.0.0.0"  # noqa: S104 - a server in a container listens on all interfaces
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=1, ge=1)
    # Prometheus scrapes /metrics on a port of its own, which no Ingress routes to.
    metrics_port: int = Field(default=9464, ge=1, le=65535)
    # Where error reports go (error_reports.py); empty: none are sent. Anyone who has it can
    # send events to the project, so it is kept like a secret.
    sentry_dsn: SecretStr = SecretStr("")
{%- if cookiecutter.framework == "django" %}
    # Comma-separated in the environment. Any host by default: the ingress in front routes by
    # host name, and Kubernetes probes come with the pod's IP as Host (see .env.example).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default=["*"], min_length=1)
{%- endif %}
{%- if cookiecutter.database != "none" %}
    database_url: str
{%- endif %}
{%- if cookiecutter.worker != "none" %}
    broker_url: str
    worker_queue: str = Field(default=DEFAULT_QUEUE, pattern=QUEUE_NAME_PATTERN)
{%- if worker.concurrency_unit %}
    worker_concurrency: int = Field(default=2, ge=1)
{%- endif %}
    worker_heartbeat_file: Path = DEFAULT_HEARTBEAT_FILE
    worker_metrics_port: int = Field(default=9465, ge=1, le=65535)
{%- endif %}
    # Traces (tracing.py), under OpenTelemetry's own names: off while both endpoints are empty.
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""
    otel_service_name: str = "{{ cookiecutter.project_slug }}"
    otel_traces_sampler: Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ] = "parentbased_traceidratio"
    otel_traces_sampler_arg: float = Field(default=0.1, ge=0, le=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

{%- if cookiecutter.framework == "django" %}

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip() for host in value.split(",") if host.strip()]
        return value
{%- endif %}

    @field_validator("secret_key")
    @classmethod
    def real_secret_outside_development(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if info.data.get("environment", "production") in ("development", "test"):
            return value
        secret = value.get_secret_value() if value else ""
        if not secret or secret == SECRET_PLACEHOLDER:
            message = f"must be set to a real secret when ENVIRONMENT={info.data['environment']}"
            raise ValueError(message)
        if len(secret) < MIN_SECRET_LENGTH:
            message = f"must be at least {MIN_SECRET_LENGTH} characters long"
            raise ValueError(message)
        return value

    @field_validator("sentry_dsn")
    @classmethod
    def sentry_dsn_or_nothing(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            return value
        # The SDK's own reader, imported only once error reports are on.
        from sentry_sdk.utils import BadDsn, Dsn

        try:
            Dsn(value.get_secret_value())
        except BadDsn as error:
            message = f"must be empty (no error reports) or a Sentry DSN: {error}"
            raise ValueError(message) from None
        return value
{%- if cookiecutter.database != "none" %}

    @field_validator("database_url")
    @classmethod
    def installed_driver(cls, value: str) -> str:
        scheme, separator, rest = value.partition("://")
        if not separator or scheme not in DATABASE_SCHEMES:
            message = f"must be a URL starting with one of {', '.join(DATABASE_SCHEMES)}://"
            raise ValueError(message)
        return f"{DATABASE_DRIVER}://{rest}"
{%- endif %}
{%- if cookiecutter.worker != "none" %}

    @field_validator("broker_url")
    @classmethod
    def broker_of_the_worker(cls, value: str) -> str:
        scheme, separator, _rest = value.partition("://")
        if not separator or scheme not in BROKER_SCHEMES:
            message = f"must be a URL starting with one of {', '.join(BROKER_SCHEMES)}://"
            raise ValueError(message)
        return value
{%- endif %}


def describe(error: ValidationError) -> str:
    """One line naming each invalid variable, for a service that refuses to start."""
    problems = []
    for detail in error.errors():
        variable = str(detail["loc"][0]).upper() if detail["loc"] else "configuration"
        reason = detail["msg"].removeprefix("Value error, ")
        echo_input = detail["type"] != "missing" and variable not in SENSITIVE_VARIABLES
        if echo_input and "input" in detail:
            reason += f" (got {detail['input']!r})"
        problems.append(f"{variable}: {reason}")
    return "invalid configuration: " + "; ".join(problems)


@lru_cache
def get_settings() -> Settings:
    return Settings()
