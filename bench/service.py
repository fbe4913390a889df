"""Benchmark, not a test: what the generated structure costs at run time. For each framework,
requests per second and p50/p99 latency of `GET /items/{id}` and `GET /health/ready` through
the generated production server (`<project> serve`), against a minimal app of the same
framework doing the same database read, under the same server, workers and concurrency; and
the time each takes from start to ready. Loopback only, bounded duration.

    python bench/service.py [--database sqlite|postgresql] [--seconds S] [--connections C]

Load generator: wrk where it is installed (Debian: apt-get install wrk), else a Python one
(tests/loadgen.py), which saturates sooner; the table says which. Writes
bench/results/service-DATABASE.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import common

WORKERS = 2
# The databases the benchmark runs on, with the title of each one's table in CONTRIBUTING.md.
DATABASE_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
ENDPOINTS = ("/items/{id}", "/health/ready")
STARTUP_TIMEOUT = 120

# The minimal apps: one file each, the framework's shortest way to answer the same two
# requests with the same read of one row (and the same readiness query).
BASELINES = {
    "fastapi": """
        import os
        from fastapi import FastAPI, HTTPException
        from sqlalchemy import create_engine, text

        engine = create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)
        app = FastAPI()

        @app.get("/items/{item_id}")
        def get_item(item_id: int) -> dict:
            with engine.connect() as connection:
                row = connection.execute(
                    text("SELECT id, name, description, created_at FROM items WHERE id = :id"),
                    {"id": item_id},
                ).mappings().first()
            if row is None:
                raise HTTPException(404)
            return dict(row)

        @app.get("/health/ready")
        def ready() -> dict:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return {"status": "ok"}
    """,
    "flask": """
        import os
        from flask import Flask, abort
        from sqlalchemy import create_engine, text

        engine = create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)
        app = Flask(__name__)

        @app.get("/items/<int:item_id>")
        def get_item(item_id):
            with engine.connect() as connection:
                row = connection.execute(
                    text("SELECT id, name, description, created_at FROM items WHERE id = :id"),
                    {"id": item_id},
                ).mappings().first()
            if row is None:
                abort(404)
            return dict(row)

        @app.get("/health/ready")
        def ready():
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return {"status": "ok"}
    """,
    "django": """
        import os
        from urllib.parse import urlsplit

        import django
        from django.conf import settings
        from django.core.wsgi import get_wsgi_application
        from django.db import connection
        from django.http import Http404, JsonResponse
        from django.urls import path

        url = urlsplit(os.environ["DATABASE_URL"])
        if url.scheme == "sqlite":
            database = {"ENGINE": "django.db.backends.sqlite3", "NAME": url.path[1:]}
        else:
            # Persistent connections, as the generated project keeps them: the comparison is
            # of the structure around the read, not of connecting per request.
            database = {
                "ENGINE": "django.db.backends.postgresql", "NAME": url.path[1:],
                "USER": url.username, "HOST": url.hostname, "PORT": url.port,
                "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True,
            }

        def get_item(request, item_id):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id, name, description, created_at FROM items_item WHERE id = %s",
                    [item_id],
                )
                row = cursor.fetchone()
            if row is None:
                raise Http404
            keys = ("id", "name", "description", "created_at")
            return JsonResponse(dict(zip(keys, row)))

        def ready(request):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return JsonResponse({"status": "ok"})

        settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="x" * 50,
            DATABASES={"default": database}, MIDDLEWARE=[],
        )
        urlpatterns = [path("items/<int:item_id>", get_item), path("health/ready", ready)]
        django.setup()
        app = get_wsgi_application()
    """,
}


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds from now until url/health/ready answers 200."""
    start = time.perf_counter()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=5) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} not ready in {STARTUP_TIMEOUT}s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def load(url: str, seconds: float, connections: int) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 latency (ms) of GET url."""
    if shutil.which("wrk"):
        return load_with_wrk(url, seconds, connections)
    from loadgen import run_load

    target = urlsplit(url)
    result = run_load(
        f"{target.scheme}://{target.netloc}",
        [("GET", target.path, None)],
        concurrency=connections,
        max_requests=10**7,
        max_seconds=seconds,
    )
    if result.errors or set(result.statuses) != {200}:
        raise SystemExit(f"errors under load at {url}: {result.statuses} {result.errors[:3]}")
    return result.per_second, result.percentile(0.5) * 1000, result.percentile(0.99) * 1000


def load_with_wrk(url: str, seconds: float, connections: int) -> tuple[float, float, float]:
    command = [
        "wrk",
        f"--threads={min(2, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--latency",
        # A slow answer counts in the latency rather than as a timeout (wrk's default is 2 s).
        "--timeout=30s",
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"errors under load at {url}:\n{output}")
    per_second = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (per_second and p50 and p99):
        raise SystemExit(f"unexpected wrk output:\n{output}")
    return float(per_second.group(1)), wrk_ms(p50.group(1)), wrk_ms(p99.group(1))


def wrk_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def generator_name() -> str:
    return "wrk" if shutil.which("wrk") else "a Python load generator (tests/loadgen.py)"


def load_and_cpu(
    url: str, seconds: float, connections: int, server: int
) -> tuple[float, float, float, float]:
    """load(), and the CPU time the server's processes (under pid `server`) spent per request
    (ms): the steadier figure when other load shares the machine, as it counts only the
    server's own work."""
    cpu, start = common.cpu_seconds(server), time.perf_counter()
    per_second, p50, p99 = load(url, seconds, connections)
    cpu_rate = (common.cpu_seconds(server) - cpu) / (time.perf_counter() - start)
    return per_second, p50, p99, cpu_rate / per_second * 1000


def measure(
    url: str, item_id: int, seconds: float, connections: int, server: int
) -> dict[str, tuple[float, float, float, float]]:
    """load_and_cpu() of each endpoint, after a warm-up."""
    figures = {}
    for endpoint in ENDPOINTS:
        target = url + endpoint.format(id=item_id)
        load(target, 1, connections)  # warm up: every worker has its connections
        figures[endpoint] = load_and_cpu(target, seconds, connections, server)
    return figures


def services_class() -> type:
    """The contract suite's services, keeping what the benchmark needs to start a minimal
    app beside each: its project, environment and folder, and its time to ready."""
    from services import Service, Services

    class TimedServices(Services):
        def __init__(self, root: Path) -> None:
            super().__init__(root)
            self.timings: dict[str, tuple[Path, dict[str, str], float]] = {}
            self.last: tuple[Path, dict[str, str]] = (root, {})

        def _create_database(self, project: Path, environment: dict[str, str]) -> None:
            super()._create_database(project, environment)
            # Called once the environment is complete, just before migrate and serve.
            self.last = (project, dict(environment))

        def _wait_until_answering(
            self, service: Service, process: subprocess.Popen[bytes], *, ready: bool
        ) -> None:
            seconds = wait_until_ready(service.url, process, service.log)
            project, environment = self.last
            self.timings[service.url] = (project, environment, seconds)

    return TimedServices


def start_baseline(
    framework: str, project: Path, environment: dict[str, str], workdir: Path, port: int
) -> tuple[str, float, subprocess.Popen[bytes]]:
    """The minimal app of this framework, under the same server and workers."""
    (workdir / "baseline.py").write_text(textwrap.dedent(BASELINES[framework]).lstrip())
    binaries = project / ".venv" / "bin"
    if framework == "fastapi":
        command = [
            str(binaries / "uvicorn"),
            "baseline:app",
            f"--workers={WORKERS}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--no-access-log",
            "--log-level=warning",
        ]
    else:
        command = [
            str(binaries / "gunicorn"),
            f"--workers={WORKERS}",
            f"--bind=127.0.0.1:{port}",
            "baseline:app",
        ]
    log = workdir / "baseline.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=workdir, env=environment, stdout=output, stderr=output
        )
    url = f"http://127.0.0.1:{port}"
    return url, wait_until_ready(url, process, log), process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=list(DATABASE_TITLES), default="sqlite")
    parser.add_argument("--seconds", type=float, default=10, help="load per request and app")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--frameworks", nargs="*", help="default: every one the template offers")
    arguments = parser.parse_args()
    from harness import CHOICES
    from services import free_port

    generator = generator_name()
    rows, startup_rows = [], []
    with tempfile.TemporaryDirectory() as root:
        services = services_class()(Path(root))
        try:
            for framework in arguments.frameworks or CHOICES["framework"]:
                combination = {"framework": framework, "database": arguments.database}
                service = services.start(combination, reachable=True)
                project, environment, generated_ready = services.timings[service.url]
                item_id = service.request("POST", "/items", {"name": "bench"}).json()["id"]
                (server,) = services.processes  # `serve`: no worker in these choices
                generated = measure(
                    service.url, item_id, arguments.seconds, arguments.connections, server.pid
                )
                # One app at a time on the machine's cores; its database stays for the
                # minimal app (stop_all, at the end, drops it).
                for process in services.processes:
                    stop(process)
                services.processes.clear()
                baseline_url, baseline_ready, baseline_process = start_baseline(
                    framework, project, environment, service.log.parent, free_port()
                )
                try:
                    baseline = measure(
                        baseline_url,
                        item_id,
                        arguments.seconds,
                        arguments.connections,
                        baseline_process.pid,
                    )
                finally:
                    stop(baseline_process)
                for endpoint in ENDPOINTS:
                    g, b = generated[endpoint], baseline[endpoint]
                    rows.append(
                        (
                            framework,
                            f"GET {endpoint}",
                            f"{g[0]:.0f}",
                            f"{b[0]:.0f}",
                            common.ratio(g[0], b[0]),
                            f"{g[1]:.1f} / {g[2]:.1f}",
                            f"{b[1]:.1f} / {b[2]:.1f}",
                            f"{g[3]:.2f} / {b[3]:.2f}",
                        )
                    )
                startup_rows.append(
                    (
                        framework,
                        f"{generated_ready:.2f} s",
                        f"{baseline_ready:.2f} s",
                        common.ratio(generated_ready, baseline_ready),
                    )
                )
                print(*rows[-2:], startup_rows[-1], sep="\n", flush=True)
        finally:
            services.stop_all()
    headers = [
        "framework",
        "request",
        "generated req/s",
        "minimal req/s",
        "ratio",
        "generated p50 / p99 ms",
        "minimal p50 / p99 ms",
        "server CPU ms per request, generated / minimal",
    ]
    body = common.table(headers, rows)
    body += "\n\nStart-up, from the server's start to `/health/ready` answering 200:\n\n"
    body += common.table(["framework", "generated", "minimal", "ratio"], startup_rows)
    body += (
        f"\n\n{arguments.database} database; {WORKERS} server workers (uvicorn for FastAPI, "
        f"gunicorn for Flask and Django, as generated); {arguments.connections} connections "
        f"for {arguments.seconds:.0f} s per request after a 1 s warm-up, one app at a time; "
        f"load from {generator} on the same machine, so client and servers share its cores. "
        "The generated service logs every request as a JSON line, as in production; the "
        "minimal app logs nothing."
    )
    command = (
        f"python bench/service.py --database {arguments.database} "
        f"--seconds {arguments.seconds:.0f} --connections {arguments.connections}"
    )
    title = f"Service on {DATABASE_TITLES[arguments.database]}"
    common.write_result(f"service-{arguments.database}", title, command, body)


if __name__ == "__main__":
    main()
