"""The FastAPI application: `create_app` builds it from the settings.

See https://fastapi.tiangolo.com/tutorial/bigger-applications/
"""

import logging
{%- if cookiecutter.database != "none" %}
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
{%- endif %}
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
{%- if cookiecutter.database != "none" %}
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker
{%- endif %}

{% if cookiecutter.database != "none" -%}
from .database import make_engine
{% endif -%}
from .health import router as health_router
{%- if cookiecutter.database != "none" %}
from .items.router import router as items_router
{%- endif %}
from .logs import RequestLogMiddleware, configure_logging
from .settings import Settings, get_settings

logger = logging.getLogger(__name__)

NAME = "{{ cookiecutter.project_slug }}"
TITLE = {{ cookiecutter.project_name | tojson }}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

{%- if cookiecutter.database != "none" %}
    app = FastAPI(title=TITLE, version=version(NAME), lifespan=lifespan)
{%- else %}
    app = FastAPI(title=TITLE, version=version(NAME))
{%- endif %}
    app.state.settings = settings
{%- if cookiecutter.database != "none" %}
    app.state.engine = make_engine(settings.database_url)
    app.state.sessions = sessionmaker(app.state.engine, expire_on_commit=False)
{%- endif %}
    app.add_middleware(RequestLogMiddleware)
{%- if cookiecutter.database != "none" %}
    app.add_exception_handler(OperationalError, database_unavailable)
{%- endif %}
    app.add_exception_handler(Exception, internal_error)
    app.include_router(health_router)
{%- if cookiecutter.database != "none" %}
    app.include_router(items_router)
{%- endif %}

    @app.get("/", tags=["meta"])
    def about() -> dict[str, str]:
        return {"name": NAME, "version": app.version}

    return app
{%- if cookiecutter.database != "none" %}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # Close the pooled connections when the server stops.
    app.state.engine.dispose()


async def database_unavailable(_request: Request, error: Exception) -> JSONResponse:
    # A lost database is the operator's problem, not a bug: answer 503 so that clients and
    # load balancers retry, and keep the traceback out of the response.
    logger.error("database unavailable: %s", error.__class__.__name__, exc_info=error)
    return JSONResponse({"detail": "Database unavailable"}, status_code=503)
{%- endif %}


async def internal_error(_request: Request, error: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=error)
    return JSONResponse({"detail": "Internal server error"}, status_code=500)
