{%- from "{#choices.jinja#}" import framework, worker with context -%}
{%- set integration = worker.error_reports.integration -%}
"""Error reports: the unhandled errors of every process, sent to Sentry once SENTRY_DSN is set.

Off without a DSN: then the SDK is not even imported. Each process sets them up once, as
it starts and after any fork: the app factory does in each server process{% if cookiecutter.worker != "none" %}, the worker
and scheduler commands before they connect{% endif %}.
The SDK's integrations report what {{ framework.name }}{% if cookiecutter.worker != "none" %}, {{ worker.name }}{% endif %} and the logging module catch.
Tracing is OpenTelemetry's, not Sentry's: the SDK sends errors only.
See https://docs.sentry.io/platforms/python/configuration/options/
"""

from importlib.metadata import version
{%- if cookiecutter.worker == "rq" %}
from typing import TYPE_CHECKING
{%- endif %}

from .openapi import NAME
from .settings import Settings
{%- if cookiecutter.worker == "rq" %}

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint
{%- endif %}

# The request headers an event keeps, to help reproduce an error: never a credential. The
# others are sent as "[Filtered]".
KEPT_HEADERS = ["user-agent", "content-type", "content-length"]


def setup(settings: Settings, component: str) -> None:
    """Send this process's errors to Sentry, tagged with the component it runs, if
    SENTRY_DSN is set; else do nothing."""
    dsn = settings.sentry_dsn.get_secret_value()
    if not dsn:
        return
    # Imported only when on: a service without a DSN loads nothing of the SDK.
    import sentry_sdk
{%- if integration %}
    from {{ integration.module }} import {{ integration.name }}
{%- endif %}
{%- if worker.error_reports.unreported_loggers %}
    from sentry_sdk.integrations.logging import ignore_logger
{%- endif %}

    sentry_sdk.init(
        dsn=dsn,
        environment=settings.environment,
        release=f"{NAME}@{version(NAME)}",
        # What an event may hold of a request or a task: the method, the path and the
        # exception with its stack and source lines; nothing that tells who the user is or
        # may carry a secret (bodies, cookies, query strings, credentials in headers, the
        # frames' variables, the tasks' arguments, the queries' values). The SDK scrubs by
        # these rules alone: it refuses an event scrubber beside them.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "allowlist", "terms": KEPT_HEADERS}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "graphql": {"document": False, "variables": False},
            "gen_ai": {"inputs": False, "outputs": False},
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
        },
{%- if cookiecutter.worker == "rq" %}
        before_send=without_job_description,
{%- endif %}
{%- if integration %}
        # Not enabled by the SDK itself: it patches the {{ worker.name }} brokers made after this call.
        integrations=[{{ integration.name }}()],
{%- endif %}
    )
{%- for logger in worker.error_reports.unreported_loggers %}
    # The worker logs a failed task with its arguments written out; the integration reports it.
    ignore_logger("{{ logger }}")
{%- endfor %}
    sentry_sdk.get_global_scope().set_tag("component", component)
{%- if cookiecutter.worker == "rq" %}


def without_job_description(event: "Event", _hint: "Hint") -> "Event":
    """RQ's job description is the call with its arguments written out: it stays out too."""
    job = event.get("extra", {}).get("rq-job")
    if isinstance(job, dict):
        job.pop("description", None)
    return event
{%- endif %}
