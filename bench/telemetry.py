"""Benchmark, not a test: what telemetry costs a service. Requests per second and p50/p99
latency of `GET /items/{id}` through the generated production server on PostgreSQL: with its
request metrics switched off (bench/metrics_off/) and traces off, as generated (metrics on,
traces off: no endpoint set), and with traces on too, with the default sampler
(parentbased_traceidratio, 0.1) and with every trace kept (always_on), side by side. The
servers run at once and are loaded in turn, round after round, so that the machine's other
load falls on each alike; the table gives each one's median round.

    python bench/telemetry.py [--seconds S] [--connections C] [--rounds N] [--frameworks ...]

The spans go to a local sink that answers OTLP/HTTP without decoding: a collector's work is
done elsewhere in production. Load generator as bench/service.py's. Writes
bench/results/telemetry.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import common
from service import load, load_and_cpu

# Each way of running the service: its name in the table, whether it records its request
# metrics, and the variables it adds to turn traces on (none: off).
MODES = {
    "metrics off, traces off": (False, {}),
    "as generated: metrics, traces off": (True, {}),
    "metrics, traces sampled 0.1 (default)": (
        True,
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"},
    ),
    "metrics, every trace": (True, {"OTEL_TRACES_SAMPLER": "always_on"}),
}
BASELINE = "metrics off, traces off"
ENDPOINT = "/items/{id}"
# On the path of a mode without metrics: it switches the service's request metrics off.
METRICS_OFF = Path(__file__).resolve().parent / "metrics_off"


class Sink:
    """An OTLP/HTTP endpoint that takes every export and counts it."""

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.exports += 1
                sink.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


def services_class() -> type:
    """The contract suite's services, with metrics and traces as a mode says, each on a
    database of its own (the modes' servers run at once)."""
    from harness import environment_for
    from services import Services

    class TelemetryServices(Services):
        def __init__(self, root: Path, installs: object, mode: str, sink: Sink) -> None:
            root.mkdir()
            super().__init__(root, installs)
            self.mode = mode
            self.sink = sink

        def _install(self, combination: dict[str, str]) -> tuple[Path, dict[str, str]]:
            project, environment = super()._install(combination)
            purpose = f"telemetry{list(MODES).index(self.mode)}"
            environment["DATABASE_URL"] = environment_for(combination, purpose)["DATABASE_URL"]
            metrics, traces = MODES[self.mode]
            if not metrics:
                (package,) = (project / "src").iterdir()
                environment["PYTHONPATH"] = str(METRICS_OFF)
                environment["BENCH_METRICS_MODULE"] = f"{package.name}.metrics"
            if traces:
                environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.sink.endpoint
                environment.update(traces)
            return project, environment

    return TelemetryServices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="load per round and mode")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frameworks", nargs="*", help="default: every one the template offers")
    arguments = parser.parse_args()
    from harness import CHOICES
    from installs import Installs

    generator = "wrk" if shutil.which("wrk") else "a Python load generator (tests/loadgen.py)"
    sink = Sink()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        installs = Installs(Path(root) / "installs")
        traced_services = services_class()
        for framework in arguments.frameworks or CHOICES["framework"]:
            combination = {"framework": framework, "database": "postgresql"}
            running = {
                mode: traced_services(Path(root) / f"{framework}-{index}", installs, mode, sink)
                for index, mode in enumerate(MODES)
            }
            try:
                urls, servers = {}, {}
                for mode, services in running.items():
                    service = services.start(combination, reachable=True)
                    item = service.request("POST", "/items", {"name": "bench"}).json()
                    urls[mode] = service.url + ENDPOINT.format(id=item["id"])
                    (server,) = services.processes  # `serve`: no worker in these choices
                    servers[mode] = server.pid
                    load(urls[mode], 1, arguments.connections)  # warm up
                figures: dict[str, list[tuple[float, ...]]] = {m: [] for m in MODES}
                for _round in range(arguments.rounds):
                    for mode, url in urls.items():
                        figures[mode].append(
                            load_and_cpu(
                                url, arguments.seconds, arguments.connections, servers[mode]
                            )
                        )
            finally:
                for services in running.values():
                    services.stop_all()
            medians = {
                mode: [statistics.median(f[i] for f in measured) for i in range(4)]
                for mode, measured in figures.items()
            }
            above = medians[BASELINE]
            for mode, (per_second, p50, p99, cpu) in medians.items():
                rows.append(
                    (
                        framework,
                        mode,
                        f"{per_second:.0f}",
                        common.ratio(per_second, medians[BASELINE][0]),
                        common.ratio(per_second, above[0]),
                        f"{p50:.1f} / {p99:.1f}",
                        f"{cpu:.2f}",
                        common.ratio(cpu, medians[BASELINE][3]),
                        " ".join(f"{f[0]:.0f}" for f in figures[mode]),
                    )
                )
                above = medians[mode]
            print(*rows[-len(MODES) :], sep="\n", flush=True)
    headers = [
        "framework",
        "telemetry",
        "req/s (median)",
        "against no telemetry",
        "against the row above",
        "p50 / p99 ms",
        "server CPU ms per request",
        "against no telemetry",
        "req/s of each round",
    ]
    body = common.table(headers, rows)
    body += (
        f"\n\n`GET {ENDPOINT}` on PostgreSQL; 2 server workers, as generated; "
        f"{arguments.connections} connections for {arguments.seconds:.0f} s per mode and round, "
        f"{arguments.rounds} rounds, the modes in turn, after a 1 s warm-up each; load from "
        f"{generator} on the same machine, so client, servers and the spans' sink share its "
        f"cores. The server's CPU time per request (its supervisor and workers, from /proc) counts "
        "only the server's own work: it varies less than the rates when the load generator "
        f"and other work share the cores. The sink took {sink.exports} exports "
        f"({sink.bytes / 2**20:.1f} MiB)."
    )
    command = (
        f"python bench/telemetry.py --seconds {arguments.seconds:.0f} "
        f"--connections {arguments.connections} --rounds {arguments.rounds}"
    )
    common.write_result("telemetry", "Telemetry's cost", command, body)


if __name__ == "__main__":
    main()
