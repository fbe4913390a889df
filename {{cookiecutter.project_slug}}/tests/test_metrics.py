{%- set client_type = {"fastapi": "TestClient", "flask": "FlaskClient", "django": "Client"}[cookiecutter.framework] -%}
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

{% if cookiecutter.database != "none" and cookiecutter.framework == "django" -%}
import pytest
{% endif -%}
{% if cookiecutter.framework == "fastapi" -%}
from fastapi.testclient import TestClient
{% elif cookiecutter.framework == "flask" -%}
from flask.testing import FlaskClient
{% elif cookiecutter.framework == "django" -%}
from django.test import Client
{% endif -%}
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
{%- if cookiecutter.database != "none" %}

from {{ cookiecutter.package_name }} import metrics
{%- endif %}


def requests_counted(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def durations_counted(method: str, route: str) -> float:
    labels = {"method": method, "route": route}
    return REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) or 0.0


{% if cookiecutter.database != "none" and cookiecutter.framework == "django" -%}
@pytest.mark.django_db
{% endif -%}
def test_requests_are_counted_by_route_template_never_by_path(client: {{ client_type }}) -> None:
    routes = [("/health/live", "/health/live", "200"), ("/no-such-path/7", "unmatched", "404")]
{%- if cookiecutter.database != "none" %}
    routes.append(("/items/2147483647", "/items/{item_id}", "404"))
{%- endif %}
    before = [requests_counted("GET", route, status) for _path, route, status in routes]
    durations_before = [durations_counted("GET", route) for _path, route, _status in routes]
    for path, _route, _status in routes:
        client.get(path)
        client.get(path)
    after = [requests_counted("GET", route, status) for _path, route, status in routes]
    durations_after = [durations_counted("GET", route) for _path, route, _status in routes]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2.0] * len(routes)
    assert [a - b for a, b in zip(durations_after, durations_before, strict=True)] == [2.0] * len(
        routes
    )
    assert REGISTRY.get_sample_value("http_requests_in_flight") == 0.0


def test_a_method_http_does_not_define_is_counted_as_other(client: {{ client_type }}) -> None:
    before = requests_counted("OTHER", "/health/live", "405")
{%- if cookiecutter.framework == "fastapi" %}
    client.request("BREW", "/health/live")
{%- elif cookiecutter.framework == "flask" %}
    client.open("/health/live", method="BREW")
{%- elif cookiecutter.framework == "django" %}
    client.generic("BREW", "/health/live")
{%- endif %}
    after = requests_counted("OTHER", "/health/live", "405") + requests_counted(
        "OTHER", "unmatched", "405"
    )
    assert after - before == 1.0


def test_the_build_is_labelled_with_its_version(client: {{ client_type }}) -> None:
    from importlib.metadata import version

    client.get("/health/live")
    labels = {"version": version("{{ cookiecutter.project_slug }}")}
    assert REGISTRY.get_sample_value("service_build_info", labels) == 1.0
{%- if cookiecutter.database != "none" %}


def test_readiness_sets_one_gauge_per_dependency() -> None:
    metrics.record_readiness({"database": "ok", "broker": "unavailable: ConnectionError"})
    ready = REGISTRY.get_sample_value
    assert ready("service_dependency_ready", {"dependency": "database"}) == 1.0
    assert ready("service_dependency_ready", {"dependency": "broker"}) == 0.0
{%- endif %}


# Processes that count in one directory, as `serve`'s do, then exit, and one caught creating
# its file; then the metrics server's answer.
MULTIPROCESS_PROGRAM = textwrap.dedent(
    """
    import multiprocessing
    import os
    import urllib.request
    from pathlib import Path

    from {{ cookiecutter.package_name }} import metrics_server


    def answer(requests):
        from {{ cookiecutter.package_name }} import metrics

        metrics.IN_FLIGHT.inc()  # left in flight: the process dies with it
        for _ in range(requests):
            metrics.observe("GET", "/health/live", 200, 0.001)


    if __name__ == "__main__":
        metrics_server.share_across_processes("test")
        multiprocessing.set_start_method("spawn")
        for requests in (3, 4):
            process = multiprocessing.Process(target=answer, args=(requests,))
            process.start()
            process.join()
        # A process writes to a file it first creates empty, then sizes.
        directory = os.environ[metrics_server.MULTIPROCESS_DIRECTORY]
        Path(directory, f"counter_{os.getpid() + 1}.db").touch()
        port = metrics_server.start("127.0.0.1", 0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            print(response.read().decode())
    """
)


def test_the_metrics_server_adds_up_every_process_and_drops_the_gauges_of_dead_ones(
    tmp_path: Path,
) -> None:
    program = tmp_path / "count.py"
    program.write_text(MULTIPROCESS_PROGRAM)
    process = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=60, check=False
    )
    assert process.returncode == 0, process.stderr
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(process.stdout)
        for sample in family.samples
    }
    live = (("method", "GET"), ("route", "/health/live"), ("status", "200"))
    assert samples[("http_requests_total", live)] == 7.0
    assert samples[("http_request_duration_seconds_count", live[:2])] == 7.0
    # Each process died with a request in flight; none is left, so the gauge has no sample.
    assert samples.get(("http_requests_in_flight", ()), 0.0) == 0.0


# A command that serves its metrics, says on which port, then runs until it is killed.
SERVING_PROGRAM = textwrap.dedent(
    """
    import time

    from {{ cookiecutter.package_name }} import metrics_server

    metrics_server.share_across_processes("test")
    print(metrics_server.start("127.0.0.1", 0), flush=True)
    while True:
        time.sleep(1)
    """
)


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def test_the_metrics_are_served_by_a_process_of_their_own_which_ends_with_the_command(
    tmp_path: Path,
) -> None:
    program = tmp_path / "serve.py"
    program.write_text(SERVING_PROGRAM)
    with subprocess.Popen(
        [sys.executable, str(program)], stdout=subprocess.PIPE, text=True
    ) as command:
        try:
            assert command.stdout is not None
            port = int(command.stdout.readline())
            # Scrapes are answered while the command itself is stopped: by another process.
            command.send_signal(signal.SIGSTOP)
            assert answers(port)
            command.send_signal(signal.SIGCONT)
            # Killed, the command leaves no server behind: its port stops answering.
            command.kill()
            command.wait(timeout=30)
            deadline = time.monotonic() + 30
            while answers(port) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not answers(port)
        finally:
            command.kill()
