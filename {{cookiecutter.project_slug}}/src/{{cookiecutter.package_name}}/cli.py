"""The service's commands: the same ones run it locally, in containers and in Kubernetes."""

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import uvicorn
{%- if cookiecutter.database != "none" %}
from alembic import command
{%- endif %}
from pydantic import ValidationError
{% if cookiecutter.database != "none" %}
from .database import alembic_config
{%- endif %}
from .logs import configure_logging
from .settings import Settings, describe, get_settings

PROG = "{{ cookiecutter.project_slug }}"
APP_FACTORY = "{{ cookiecutter.package_name }}.app:create_app"
PACKAGE_DIR = Path(__file__).parent

logger = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        # Logging is ours (JSON, see logs.py): uvicorn must not install its own.
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
    )


def dev(settings: Settings) -> None:
{%- if cookiecutter.database != "none" %}
    migrate(settings)
{%- endif %}
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host="127.0.0.1",
        port=settings.port,
        reload=True,
        reload_dirs=[str(PACKAGE_DIR)],
        log_config=None,
        access_log=False,
    )
{%- if cookiecutter.database != "none" %}


def migrate(settings: Settings) -> None:
    command.upgrade(alembic_config(settings.database_url), "head")
    logger.info("database migrated to the latest revision")
{%- endif %}


COMMANDS: dict[str, tuple[Callable[[Settings], None], str]] = {
    "serve": (serve, "run the production server on HOST:PORT with WEB_CONCURRENCY processes"),
    "dev": (dev, "{% if cookiecutter.database != "none" %}migrate, then {% endif %}run an auto-reloading server on 127.0.0.1:PORT"),
{%- if cookiecutter.database != "none" %}
    "migrate": (migrate, "apply the database migrations up to the latest"),
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
