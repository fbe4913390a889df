"""The service's commands: the same ones run it locally, in containers and in Kubernetes.

What the web framework does for them is in server.py.
"""

import argparse
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

{% if cookiecutter.worker != "none" -%}
from . import error_reports, heartbeat
{% endif -%}
from .logs import configure_logging
from .settings import Settings, describe, get_settings

PROG = "{{ cookiecutter.project_slug }}"
{%- if cookiecutter.worker != "none" %}


# Each command imports the code it runs as it starts, with the framework set up
# (server.setup): the web server never loads the worker's code, and the worker's liveness
# probe, which an orchestrator runs every few seconds, loads neither the worker nor the
# framework.
{%- else %}


# Each command imports the code it runs as it starts, with the framework set up
# (server.setup).
{%- endif %}
def serve(settings: Settings) -> None:
    from . import metrics_server

    metrics_server.share_across_processes("serve")
    from . import server

    server.setup()
    metrics_server.start(settings.host, settings.metrics_port)
    server.serve(settings)


def dev(settings: Settings) -> None:
    from . import server

    server.setup()
    server.dev(settings)


def openapi(settings: Settings) -> None:
    """Write the API's OpenAPI document, as the service serves it, to openapi.json."""
    from . import server
    from .openapi import FILENAME, render

    server.setup()
    Path(FILENAME).write_text(render(server.openapi_document(settings)))
    print(f"{PROG}: wrote {FILENAME}")
{%- if cookiecutter.database != "none" %}


def migrate(settings: Settings) -> None:
    from . import server

    server.setup()
    server.migrate(settings)
{%- endif %}
{%- if cookiecutter.worker != "none" %}


def worker(settings: Settings) -> None:
    from . import metrics_server

    metrics_server.share_across_processes("worker")
    from . import server

    server.setup()
    from .worker import run_worker
    from .worker_metrics import QueueBacklog

    # First: it forks, and error reports start a thread.
    metrics_server.start(settings.host, settings.worker_metrics_port, QueueBacklog(settings))
    error_reports.setup(settings, "worker")
    run_worker(settings)


def scheduler(settings: Settings) -> None:
    from . import server

    server.setup()
    error_reports.setup(settings, "scheduler")
    from .worker import run_scheduler

    run_scheduler(settings)


def worker_health(settings: Settings) -> None:
    """Exit 0 while the worker's heartbeat is fresh, else 1: its liveness probe."""
    path = settings.worker_heartbeat_file
    if not heartbeat.is_fresh(path):
        message = f"{PROG}: worker heartbeat {path} is missing or older than {heartbeat.MAX_AGE}s"
        raise SystemExit(message)
{%- endif %}


COMMANDS: dict[str, tuple[Callable[[Settings], None], str]] = {
    "serve": (serve, "run the production server on HOST:PORT with WEB_CONCURRENCY processes"),
    "dev": (dev, "{% if cookiecutter.database != "none" %}migrate, then {% endif %}run an auto-reloading server on 127.0.0.1:PORT"),
    "openapi": (openapi, "write the API's OpenAPI document to openapi.json (commit it)"),
{%- if cookiecutter.database != "none" %}
    "migrate": (migrate, "apply the database migrations up to the latest"),
{%- endif %}
{%- if cookiecutter.worker != "none" %}
    "worker": (worker, "run the background worker until SIGTERM"),
    "scheduler": (scheduler, "send the periodic tasks (run exactly one)"),
    "worker-health": (worker_health, "exit 0 while the worker's heartbeat is fresh (liveness)"),
{%- endif %}
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (_run, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary)
    args = parser.parse_args(argv)

    try:
        settings = get_settings()
    except ValidationError as error:
        # One line naming the variable, no traceback: the operator's to fix, not a bug.
        parser.exit(2, f"{parser.prog}: {describe(error)}\n")
    configure_logging(settings.log_level)
    run, _summary = COMMANDS[args.command]
    run(settings)
    return 0
