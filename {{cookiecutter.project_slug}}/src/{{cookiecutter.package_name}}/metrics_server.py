"""The metrics of a command's processes, served to Prometheus on a port of their own.

A production server runs several processes (WEB_CONCURRENCY), and restarts one that dies.
prometheus_client's multiprocess mode counts across them: each process writes its samples
to files in one directory, and the command's first process, which outlives them, serves
their sum at /metrics. Across restarts:

- a process that dies leaves its counts and histograms behind, so totals never go down
  while the command runs;
- its live gauges (requests in flight, readiness) are removed at the next scrape;
- each start of the command begins with a fresh directory, removed at its exit: Prometheus
  reads the new, lower counts as a counter reset, which `rate()` handles.

See https://prometheus.github.io/client_python/multiprocess/
"""

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

# prometheus_client reads it as it is imported: set it first.
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# Named after the project: every service on a development host shares the temporary directory.
DIRECTORY_PREFIX = "{{ cookiecutter.project_slug }}-metrics-"


def share_across_processes(command: str) -> None:
    """Give this command and the processes it starts a fresh directory to count in, before
    anything imports prometheus_client."""
    directory = tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{command}-")
    os.environ[MULTIPROCESS_DIRECTORY] = directory
    atexit.register(remove_directory, directory, os.getpid())


def remove_directory(directory: str, owner: int) -> None:
    # A forked server process runs the exit handlers it inherited too: only the owner removes.
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


class DeadProcessSweeper:
    """Removes the live gauges of processes that are gone, before each scrape adds them up."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterable[Any]:
        from prometheus_client import multiprocess

        for path in self.directory.glob("gauge_live*_*.db"):
            pid = int(path.stem.rpartition("_")[2])
            if not is_alive(pid):
                # prometheus_client leaves these two functions unannotated.
                multiprocess.mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]
        return ()


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only asks whether the process exists
    except ProcessLookupError:
        return False
    return True


def start(host: str, port: int, *collectors: "Collector") -> int:
    """Serve the processes' summed metrics on host:port (at /metrics, as Prometheus asks),
    with those the collectors read at each scrape, from a thread of this process; return the
    port (the one the system chose for port 0)."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    directory = os.environ[MULTIPROCESS_DIRECTORY]
    registry = CollectorRegistry()
    # Registered first: a registry collects in the order it was given its collectors.
    registry.register(DeadProcessSweeper(directory))
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    for collector in collectors:
        registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server.server_port
