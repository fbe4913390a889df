"""Benchmark, not a test: the generated service of this checkout against the same choices
generated from another revision of the template, side by side in one run. It measures what
a change to the template costs at run time: say the metrics, against the revision before
them. For each framework, requests per second and p50/p99 latency of `GET /items/{id}` and
`GET /health/ready` through each one's production server (`<project> serve`), in
alternating rounds so that the machine's other load falls on both alike.

    python bench/revisions.py REVISION [--database sqlite|postgresql] [--rounds N]
                              [--seconds S] [--connections C] [--frameworks ...]

REVISION is any git revision of this repository (a commit, a tag). Writes
bench/results/revisions-DATABASE.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

import common
from service import DATABASE_TITLES, ENDPOINTS, WORKERS, generator_name, measure


def checkout(revision: str, directory: Path) -> Path:
    """The template as it was at revision: its files, without the repository."""
    archive = subprocess.run(
        ["git", "-C", str(common.BENCH.parent), "archive", "--format=tar", revision],
        capture_output=True,
        check=True,
    )
    directory.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory


def services_of(template: Path, root: Path, purpose: str) -> object:
    """The contract suite's services, installing each combination from `template`, with
    databases and queues named by `purpose`: the two sides run at once."""
    from harness import bake, combination_id, environment_for, sync
    from installs import Installs
    from services import Services

    class TemplateInstalls(Installs):
        def __call__(self, combination: dict[str, str]) -> Path:
            key = combination_id(combination)
            if key not in self.projects:
                output = self.root / key
                output.mkdir(parents=True)
                project = bake(output, template=template, **combination)
                sync(project, environment_for(combination))
                self.projects[key] = project
            return self.projects[key]

    root.mkdir(parents=True)
    services = Services(root, TemplateInstalls(root / "installs"))
    services.purpose = purpose
    return services


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the template revision to compare this checkout with")
    parser.add_argument("--database", choices=list(DATABASE_TITLES), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per app")
    parser.add_argument("--seconds", type=float, default=5, help="load per request and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--frameworks", nargs="*", help="default: every one the template offers")
    arguments = parser.parse_args()
    from harness import CHOICES, TEMPLATE

    rows = []
    with tempfile.TemporaryDirectory() as root:
        sides = {
            "this checkout": services_of(TEMPLATE, Path(root) / "head", "benchhead"),
            arguments.revision: services_of(
                checkout(arguments.revision, Path(root) / "revision"),
                Path(root) / "base",
                "benchbase",
            ),
        }
        try:
            for framework in arguments.frameworks or CHOICES["framework"]:
                combination = {"framework": framework, "database": arguments.database}
                figures: dict[str, list[dict[str, tuple]]] = {side: [] for side in sides}
                started = {
                    side: services.start(combination, reachable=True)
                    for side, services in sides.items()
                }
                items = {
                    side: service.request("POST", "/items", {"name": "bench"}).json()["id"]
                    for side, service in started.items()
                }
                for _round in range(arguments.rounds):
                    for side, service in started.items():
                        figures[side].append(
                            measure(
                                service.url,
                                items[side],
                                arguments.seconds,
                                arguments.connections,
                                sides[side].processes[0].pid,
                            )
                        )
                head, base = figures.values()
                for endpoint in ENDPOINTS:
                    new = [statistics.median(f[endpoint][i] for f in head) for i in range(4)]
                    old = [statistics.median(f[endpoint][i] for f in base) for i in range(4)]
                    rows.append(
                        (
                            framework,
                            f"GET {endpoint}",
                            f"{new[0]:.0f}",
                            f"{old[0]:.0f}",
                            common.ratio(new[0], old[0]),
                            f"{new[1]:.1f} / {new[2]:.1f}",
                            f"{old[1]:.1f} / {old[2]:.1f}",
                            f"{new[3]:.2f} / {old[3]:.2f}",
                            common.ratio(new[3], old[3]),
                        )
                    )
                print(*rows[-len(ENDPOINTS) :], sep="\n", flush=True)
                for services in sides.values():
                    services.stop_all()
        finally:
            for services in sides.values():
                services.stop_all()
    headers = [
        "framework",
        "request",
        "this checkout req/s",
        f"{arguments.revision} req/s",
        "ratio",
        "this checkout p50 / p99 ms",
        f"{arguments.revision} p50 / p99 ms",
        f"server CPU ms per request, this checkout / {arguments.revision}",
        "CPU ratio",
    ]
    body = common.table(headers, rows)
    body += (
        f"\n\n{arguments.database} database; {WORKERS} server processes, as generated; "
        f"{arguments.connections} connections for {arguments.seconds:.0f} s per request, "
        f"{arguments.rounds} alternating rounds per app (medians), after a 1 s warm-up each; "
        f"load from {generator_name()} on the same machine. The server's CPU time per "
        "request (its supervisor and workers, from /proc) counts only the server's own work: "
        "it varies less than the rates when the load generator and other work share the cores."
    )
    command = (
        f"python bench/revisions.py {arguments.revision} --database {arguments.database} "
        f"--rounds {arguments.rounds} --seconds {arguments.seconds:.0f} "
        f"--connections {arguments.connections}"
    )
    title = f"This checkout against {arguments.revision}, on {DATABASE_TITLES[arguments.database]}"
    common.write_result(f"revisions-{arguments.database}", title, command, body)


if __name__ == "__main__":
    main()
