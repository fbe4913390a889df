"""The metrics of a command's processes, served to Prometheus on a port of their own.

A production server runs several processes (WEB_CONCURRENCY), and restarts one that dies.
prometheus_client's multiprocess mode counts across them: each process writes its samples
to files in one directory, and a process the command forks as it starts, which outlives
them, serves their sum at /metrics. Across restarts:

- a process that dies leaves its counts and histograms behind, so totals never go down
  while the command runs;
- its live gauges (requests in flight, readiness) are removed at the next scrape;
- each start of the command begins with a fresh directory, removed at its exit: Prometheus
  reads the new, lower counts as a counter reset, which `rate()` handles.

See https://prometheus.github.io/client_python/multiprocess/
"""

import atexit
import contextlib
import functools
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, NoReturn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

# prometheus_client reads it as it is imported: set it first.
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# Named after the project: every service on a development host shares the temporary directory.
DIRECTORY_PREFIX = "{{ cookiecutter.project_slug }}-metrics-"


# Once per process: a script that takes this step itself before it runs the command (as a
# test's script may, to change what the command loads) keeps the directory
# prometheus_client has seen.
@functools.cache
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


class ProcessFiles:
    """The samples the command's processes wrote to the directory, added up at each scrape,
    once the live gauges of processes that are gone are removed."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterable[Any]:
        from prometheus_client import multiprocess

        for path in self.directory.glob("gauge_live*_*.db"):
            pid = int(path.stem.rpartition("_")[2])
            if not is_alive(pid):
                # prometheus_client leaves these two functions unannotated.
                multiprocess.mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]
        files = [str(path) for path in self.directory.glob("*.db") if is_sized(path)]
        merged: Iterable[Any] = multiprocess.MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
        return merged


def is_sized(path: Path) -> bool:
    """False for a file its process has created but not yet sized: it holds no sample yet, and
    prometheus_client fails to read it (a scrape at that moment would answer 500)."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:  # a dead process's live gauge, removed since the glob
        return False


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only asks whether the process exists
    except ProcessLookupError:
        return False
    return True


def start(host: str, port: int, *collectors: "Collector") -> int:
    """Serve the processes' summed metrics on host:port (at /metrics, as Prometheus asks),
    with those the collectors read at each scrape, from a process of its own until this one
    exits; return the port (the one the system chose for port 0).

    Call it before the command starts a thread or opens a connection: the server's process is
    forked from this one. It is a process, not a thread, because the commands fork their own
    (a web server's processes, a task queue's pool or its process for each task): a process
    forked while a thread was scraping would inherit the locks the scrape held, such as the
    broker client's, and hang at its first use of them.
    """
    from prometheus_client import CollectorRegistry, make_wsgi_app

    registry = CollectorRegistry()
    registry.register(ProcessFiles(os.environ[MULTIPROCESS_DIRECTORY]))
    for collector in collectors:
        registry.register(collector)
    # Bound here, so that a port in use fails the command itself.
    server = make_server(
        host,
        port,
        make_wsgi_app(registry),
        IPv6MetricsServer if ":" in host else MetricsServer,
        QuietHandler,
    )
    # The server's process waits on this pipe, which closes when this process exits, however
    # it exits: no other process holds its other end.
    exited, holder = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(holder)
        serve_until_closed(server, exited)
    os.close(exited)
    server.server_close()
    owner = os.getpid()
    os.register_at_fork(after_in_child=lambda: close_in_child(holder, owner))
    atexit.register(stop_server, child, owner)
    return int(server.server_port)


def serve_until_closed(server: WSGIServer, exited: int) -> NoReturn:
    # Ctrl-C in a terminal reaches every process of the command: stopping is the command's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.read(exited, 1)  # returns once the command has exited
    os._exit(0)  # without the command's exit handlers


def close_in_child(holder: int, owner: int) -> None:
    """Close the pipe's end in a process the command forks: only the command holds it open."""
    if os.getppid() == owner:  # the processes those forked do not have it
        os.close(holder)


def stop_server(child: int, owner: int) -> None:
    """Stop the server's process and wait for it: its port is free once the command has exited."""
    if os.getpid() != owner:
        return  # a process forked from the command, exiting
    # Reaped already, maybe, by the command's own handler (a web server's).
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(child, signal.SIGTERM)
        os.waitpid(child, 0)


class MetricsServer(ThreadingMixIn, WSGIServer):
    """A thread for each scrape."""

    daemon_threads = True


class IPv6MetricsServer(MetricsServer):
    address_family = socket.AF_INET6


class QuietHandler(WSGIRequestHandler):
    """Logs no line for each scrape."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass
