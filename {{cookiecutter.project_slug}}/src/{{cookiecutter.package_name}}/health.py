"""Health endpoints for orchestrators.

Liveness says the process answers; readiness says it can serve, its dependencies included.
See https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/
"""
{%- if cookiecutter.database != "none" %}

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .database import check_database

logger = logging.getLogger(__name__)
{%- else %}

from fastapi import APIRouter
{%- endif %}

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
def live() -> dict[str, str]:
    return {"status": "ok"}
{%- if cookiecutter.database != "none" %}


@router.get("/ready")
def ready(request: Request) -> JSONResponse:
    checks = {"database": "ok"}
    try:
        check_database(request.app.state.engine)
    except Exception as error:  # any failure means not ready
        logger.warning("database not ready: %s", error)
        checks["database"] = f"unavailable: {error.__class__.__name__}"
    ready = all(status == "ok" for status in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
{%- else %}


@router.get("/ready")
def ready() -> dict[str, object]:
    # Nothing to depend on: a stateless service is ready when it answers.
    return {"status": "ok", "checks": {}}
{%- endif %}
