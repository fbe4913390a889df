"""Traces: off unless an OTLP endpoint is set, and then every log line written inside a
span names its trace and span. Each case runs the service in a process of its own
(tracing_probe.py): OpenTelemetry's provider is set once per process."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tracing_probe
from {{ cookiecutter.package_name }} import tracing
from {{ cookiecutter.package_name }}.settings import Settings

PROBE = Path(__file__).with_name("tracing_probe.py")


def run_probe(*arguments: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The probe's log lines, and its report of what the SDK recorded."""
    # No endpoint: only the probe's in-memory exporter may turn traces on.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    finished = subprocess.run(
        [sys.executable, str(PROBE), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    reports = [line["probe"] for line in lines if "probe" in line]
    assert len(reports) == 1, finished.stdout + finished.stderr
    return [line for line in lines if "probe" not in line], reports[0]


def request_line(lines: list[dict[str, Any]]) -> dict[str, Any]:
    (line,) = [line for line in lines if line.get("message") == "request"]
    return line


@pytest.fixture(scope="module")
def traced() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The probe's request, with traces on: one process for the tests that read it."""
    return run_probe("traced")


def server_span(report: dict[str, Any]) -> dict[str, Any]:
    servers = [span for span in report["spans"] if span["kind"] == "SERVER"]
    assert len(servers) == 1, report
    return servers[0]


def test_a_request_is_a_server_span_in_the_callers_trace(
    traced: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    _lines, report = traced
    assert report["provider"] == "TracerProvider"
    span = server_span(report)
    caller = (tracing_probe.CALLER_TRACE_ID, tracing_probe.CALLER_SPAN_ID)
    assert (span["trace_id"], span["parent_span_id"]) == caller
    assert span["name"] == "GET /"
    assert span["attributes"]["http.route"] == "/"
    assert span["attributes"]["http.response.status_code"] == 200


def test_log_lines_inside_a_request_name_its_trace_and_span(
    traced: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    lines, report = traced
    line = request_line(lines)
    assert line["trace_id"] == server_span(report)["trace_id"]
    assert len(line["trace_id"]) == 32
    assert len(line["span_id"]) == 16
    assert line["span_id"] in {span["span_id"] for span in report["spans"]}


def test_without_an_endpoint_the_sdk_is_not_set_up() -> None:
    lines, report = run_probe()
    # The API's placeholder, which no SDK provider ever replaced.
    assert report == {"provider": "ProxyTracerProvider", "sdk_imported": False, "spans": []}
    assert "trace_id" not in request_line(lines)


def test_the_traces_go_to_the_endpoints_traces_path_unless_given_their_own() -> None:
    endpoint = "http://collector:4318/"
    assert tracing.traces_endpoint(Settings(environment="test")) == ""
    on_endpoint = Settings(environment="test", otel_exporter_otlp_endpoint=endpoint)
    assert tracing.traces_endpoint(on_endpoint) == "http://collector:4318/v1/traces"
    own = Settings(
        environment="test",
        otel_exporter_otlp_endpoint=endpoint,
        otel_exporter_otlp_traces_endpoint="http://traces:4318/spans",
    )
    assert tracing.traces_endpoint(own) == "http://traces:4318/spans"


@pytest.mark.parametrize(
    ("name", "description"),
    [
        ("always_on", "AlwaysOnSampler"),
        ("always_off", "AlwaysOffSampler"),
        ("traceidratio", "TraceIdRatioBased{0.25}"),
        ("parentbased_always_on", "ParentBased{root:AlwaysOnSampler,"),
        ("parentbased_traceidratio", "ParentBased{root:TraceIdRatioBased{0.25},"),
    ],
)
def test_the_sampler_is_the_one_the_settings_name(name: str, description: str) -> None:
    assert tracing.sampler(name, 0.25).get_description().startswith(description)
