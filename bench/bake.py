"""Benchmark, not a test: how long a bake takes and how many files it writes, for every
valid framework and database combination. Prints a table; asserts nothing.

    python bench/bake.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import VALID_COMBINATIONS, bake, combination_id, files_of


@contextlib.contextmanager
def hook_output_silenced():
    """The post-generation hook prints its next steps on file descriptor 1: drop them."""
    saved = os.dup(1)
    with Path(os.devnull).open("w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def measure(combination: dict[str, str], runs: int) -> tuple[float, int]:
    """The median seconds of `runs` bakes (with hooks), and the files the bake writes."""
    seconds = []
    files = 0
    for run in range(runs):
        with tempfile.TemporaryDirectory() as root:
            output = Path(root) / f"run{run}"
            output.mkdir()
            with hook_output_silenced():
                start = time.perf_counter()
                project = bake(output, **combination)
                seconds.append(time.perf_counter() - start)
            files = len(files_of(project))
    return statistics.median(seconds), files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="bakes per combination (median)")
    runs = parser.parse_args().runs
    print(f"{'combination':<20} {'median bake':>12} {'files':>6}", flush=True)
    for combination in VALID_COMBINATIONS:
        seconds, files = measure(combination, runs)
        print(f"{combination_id(combination):<20} {seconds * 1000:>9.0f} ms {files:>6}", flush=True)


if __name__ == "__main__":
    main()
