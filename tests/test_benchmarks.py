"""The benchmarks under bench/ are not tests (they print figures, not verdicts), but they
must not rot: each one starts and parses its arguments, and the pieces they share work."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from harness import TEMPLATE
from loadgen import run_load


def bench_module(name: str) -> ModuleType:
    """A module of bench/, imported as the benchmarks import it."""
    sys.path.insert(0, str(TEMPLATE / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(TEMPLATE / "bench"))


BENCHMARKS = sorted(
    path
    for path in (TEMPLATE / "bench").glob("*.py")
    if "Benchmark, not a test" in path.read_text()
)


def test_every_benchmark_is_found() -> None:
    assert {path.stem for path in BENCHMARKS} >= {"bake", "service", "telemetry", "time_to_green"}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.stem)
def test_benchmark_starts_and_explains_its_options(script: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
    assert "Benchmark, not a test" in result.stdout


def test_bake_benchmark_measures_its_floor(tmp_path: Path) -> None:
    bake = bench_module("bake")
    figures = bake.measure_once(bake.one_file_template(tmp_path), {})
    assert figures["files"] == 1
    assert 0 < figures["seconds"] < 60
    assert figures["peak"] > 2**20


def test_load_is_only_ever_sent_to_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_load(
            "http://192.0.2.1:80",
            [("GET", "/", None)],
            concurrency=1,
            max_requests=1,
            max_seconds=1,
        )


def test_a_servers_cpu_time_counts_the_processes_under_it() -> None:
    # A supervisor that only waits, over a worker that works for half a second of CPU.
    work = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n"
    work += "time.sleep(60)"
    supervisor = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {work!r}])"
    process = subprocess.Popen([sys.executable, "-c", supervisor], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while bench_module("common").cpu_seconds(process.pid) < 0.5:
            assert time.monotonic() < deadline, "the worker's CPU time was never counted"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# A service's metrics module, as bench/metrics_off/ finds it: what it records, kept in CALLS.
STAND_IN_METRICS = """
CALLS = []
def observe(*labels): CALLS.append(labels)
def record_build(version): CALLS.append(version)
class Gauge:
    def inc(self): CALLS.append("inc")
    def dec(self): CALLS.append("dec")
IN_FLIGHT = Gauge()
"""
# A process of the service: the module is not imported before the service imports it.
RECORDS = """
import sys
print("imported at start:", "stand_in_metrics" in sys.modules)
import stand_in_metrics as metrics
metrics.IN_FLIGHT.inc()
metrics.observe("GET", "/items/{item_id}", 200, 0.01)
metrics.IN_FLIGHT.dec()
metrics.record_build("1.0")
print(metrics.CALLS)
"""


@pytest.mark.parametrize(
    ("metrics_off", "recorded"),
    [(True, "['1.0']"), (False, "['inc', ('GET', '/items/{item_id}', 200, 0.01), 'dec', '1.0']")],
)
def test_the_metrics_off_mode_stops_only_the_request_metrics(
    tmp_path: Path, metrics_off: bool, recorded: str
) -> None:
    (tmp_path / "stand_in_metrics.py").write_text(STAND_IN_METRICS)
    path = (
        [str(TEMPLATE / "bench" / "metrics_off"), str(tmp_path)] if metrics_off else [str(tmp_path)]
    )
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "BENCH_METRICS_MODULE": "stand_in_metrics",
    }
    result = subprocess.run(
        [sys.executable, "-c", RECORDS], env=environment, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["imported at start: False", recorded]
