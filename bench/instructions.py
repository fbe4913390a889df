"""Benchmark, not a test: what telemetry costs a service, counted in instructions rather than
timed. For each framework, the instructions one `GET /items/{id}` takes in a process of the
generated service on PostgreSQL, in bench/telemetry.py's modes (request metrics off, as
generated, traces sampled, every trace), counted by valgrind's callgrind: the same count for
the same work whatever else the machine is doing, where rates measured on a shared machine
vary by 15-30 % from one round to the next.

    python bench/instructions.py [--requests N] [--frameworks ...]

The requests are answered in-process (bench/instructions_driver.py: a WSGI or ASGI call, no
server or socket), after a warm-up, so the count is the service's own work for a request:
the framework, the app's code, the database client (not the database server's work) and the
telemetry; the spans' exports (to bench/telemetry.py's sink) count as they happen. Needs
valgrind and gcc (Debian: apt-get install valgrind gcc). Writes
bench/results/instructions.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import common
from telemetry import BASELINE, ENDPOINT, MODES, Sink, services_class

DRIVER = Path(__file__).resolve().parent / "instructions_driver.py"
TOTALS = re.compile(r"^totals: (\d+)", re.MULTILINE)


# Valgrind's client requests, which only C can make, for the driver to call through ctypes.
CALLGRIND_REQUESTS = """
#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_START_INSTRUMENTATION; }
void stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


def callgrind_library(directory: Path) -> Path:
    source, library = directory / "callgrind_requests.c", directory / "libcallgrind_requests.so"
    source.write_text(CALLGRIND_REQUESTS)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def instructions(
    project: Path,
    environment: dict[str, str],
    framework: str,
    path: str,
    requests: int,
    workdir: Path,
) -> int:
    """The instructions the service's process executed to answer `requests` GETs of path."""
    (package,) = (project / "src").iterdir()
    out = workdir / "callgrind.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        # Counted only while the driver answers the requests: not its start-up.
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        f"--log-file={workdir / 'valgrind.log'}",
        str(project / ".venv" / "bin" / "python"),
        str(DRIVER),
        framework,
        package.name,
        path,
        str(requests),
    ]
    with (workdir / "driver.log").open("w") as log:
        finished = subprocess.run(
            command, env=environment, cwd=workdir, stdout=log, stderr=log, check=False
        )
    if finished.returncode != 0:
        raise SystemExit(
            f"instructions: the driver failed:\n{(workdir / 'driver.log').read_text()}"
        )
    totals = TOTALS.search(out.read_text())
    if totals is None:
        raise SystemExit(f"instructions: no totals in {out}")
    return int(totals[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="counted per mode")
    parser.add_argument("--frameworks", nargs="*", help="default: every one the template offers")
    arguments = parser.parse_args()
    if not (shutil.which("valgrind") and shutil.which("gcc")):
        raise SystemExit("instructions: needs valgrind and gcc (apt-get install valgrind gcc)")
    from harness import CHOICES
    from installs import Installs

    sink = Sink()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        installs = Installs(Path(root) / "installs")
        library = callgrind_library(Path(root))
        traced_services = services_class()
        for framework in arguments.frameworks or CHOICES["framework"]:
            combination = {"framework": framework, "database": "postgresql"}
            counted = {}
            for index, mode in enumerate(MODES):
                services = traced_services(
                    Path(root) / f"{framework}-{index}", installs, mode, sink
                )
                try:
                    service = services.start(combination, reachable=True)
                    item = service.request("POST", "/items", {"name": "bench"}).json()
                    workdir = Path(root) / f"{framework}-{index}-driver"
                    workdir.mkdir()
                    total = instructions(
                        service.project,
                        # A fixed hash seed: the same dictionaries, so the same count.
                        {
                            **service.environment,
                            "BENCH_CALLGRIND_LIBRARY": str(library),
                            "PYTHONHASHSEED": "0",
                        },
                        framework,
                        ENDPOINT.format(id=item["id"]),
                        arguments.requests,
                        workdir,
                    )
                finally:
                    services.stop_all()
                counted[mode] = total / arguments.requests
            above = counted[BASELINE]
            for mode, per_request in counted.items():
                rows.append(
                    (
                        framework,
                        mode,
                        f"{per_request / 1e6:.2f}",
                        common.ratio(per_request, counted[BASELINE]),
                        common.ratio(per_request, above),
                    )
                )
                above = per_request
            print(*rows[-len(MODES) :], sep="\n", flush=True)
    headers = [
        "framework",
        "telemetry",
        "million instructions per request",
        "against no telemetry",
        "against the row above",
    ]
    body = common.table(headers, rows)
    body += (
        f"\n\n`GET {ENDPOINT}` on PostgreSQL, answered {arguments.requests} times in-process per "
        "mode after a warm-up of 20, counted by callgrind (a Python process under valgrind: "
        "the count is repeatable; the time is not measured). The sink took "
        f"{sink.exports} exports."
    )
    command = f"python bench/instructions.py --requests {arguments.requests}"
    common.write_result("instructions", "Telemetry's cost in instructions", command, body)


if __name__ == "__main__":
    main()
