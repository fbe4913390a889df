{%- from "{#choices.jinja#}" import framework with context -%}
"""The web service's Prometheus metrics: its requests, its build and its dependencies.

Labels stay bounded whatever clients send: a request is counted by the route's template
(`/items/{item_id}`, as the OpenAPI document names it), never its raw path, and a method
HTTP does not define is counted as OTHER. Under `serve`, every server process writes its
samples to files that the metrics server adds up (metrics_server.py); elsewhere (tests,
`dev`) they stay in the process.
"""
{%- if cookiecutter.framework != "fastapi" %}

import functools
import re
{%- endif %}

from prometheus_client import Counter, Gauge, Histogram

# The route of a request that matched none: a 404, a 405 the router answers, or one refused
# before routing.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
OTHER_METHOD = "OTHER"
# From a millisecond answer to a ten-second one.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
{%- if cookiecutter.framework != "fastapi" %}
# A path parameter as {{ framework.name }} writes it (`<int:item_id>`, `<item_id>`).
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
{%- endif %}

REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to its answer, by method and route template.",
    ["method", "route"],
    buckets=DURATION_BUCKETS,
)
# Summed over the processes that are alive: a process that died holds no request.
IN_FLIGHT = Gauge(
    "http_requests_in_flight",
    "HTTP requests being answered now.",
    multiprocess_mode="livesum",
)
BUILD = Gauge(
    "service_build_info",
    "The running build: always 1, its version in the label.",
    ["version"],
    multiprocess_mode="max",
)
{%- if cookiecutter.database != "none" %}
# The latest readiness check of any process that is alive.
DEPENDENCY_READY = Gauge(
    "service_dependency_ready",
    "1 while the dependency answered the latest readiness check, else 0.",
    ["dependency"],
    multiprocess_mode="livemostrecent",
)
{%- endif %}


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER_METHOD
{%- if cookiecutter.framework != "fastapi" %}


# Once per rule: the service has a few, and every request asks.
@functools.cache
def route_template(rule: str) -> str:
    """A route as the OpenAPI document writes it, from {{ framework.name }}'s rule: one leading
    slash, `{name}` for each parameter."""
    return "/" + _CONVERTER.sub(r"{\1}", rule).lstrip("/")
{%- endif %}


def observe(method: str, route: str, status: int, seconds: float) -> None:
    method = method_label(method)
    REQUESTS.labels(method, route, str(status)).inc()
    DURATION.labels(method, route).observe(seconds)


def record_build(version: str) -> None:
    BUILD.labels(version).set(1)

{%- if cookiecutter.database != "none" %}


def record_readiness(checks: dict[str, str]) -> None:
    for dependency, status in checks.items():
        DEPENDENCY_READY.labels(dependency).set(1 if status == "ok" else 0)
{%- endif %}
