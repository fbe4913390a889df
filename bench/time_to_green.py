"""Benchmark, not a test: time to green. From an empty folder to a baked, installed project
whose own tests pass, as its README tells a user: `cookiecutter`, `uv sync`, `uv run pytest`.
For the default answers and for PostgreSQL with a worker (with the first worker the template
offers; PostgreSQL alone while it offers none). uv uses its cache, as the real tier does: the
figures are for a developer who has installed these packages before.

    python bench/time_to_green.py [--runs N]

Needs the machine's PostgreSQL (see CONTRIBUTING.md, Test tiers). Writes
bench/results/time_to_green.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common

STEPS = ("bake", "install", "tests")


def postgresql_combination() -> tuple[dict[str, str], str]:
    """PostgreSQL, with a worker when the template's matrix has one."""
    from harness import CHOICES, MATRIX, VALID_COMBINATIONS

    wanted = {"database": "postgresql"}
    if "worker" in MATRIX:
        wanted["worker"] = next(w for w in CHOICES["worker"] if w != "none")
    combination = next(
        c for c in VALID_COMBINATIONS if all(c[key] == value for key, value in wanted.items())
    )
    label = ", ".join(f"{option}={combination[option]}" for option in MATRIX)
    if "worker" not in MATRIX:
        label += " (the template offers no worker yet: PostgreSQL alone)"
    return combination, label


def time_once(combination: dict[str, str], root: Path) -> dict[str, float]:
    from harness import TEMPLATE, UV, answers_for, environment_for, run

    environment = environment_for(combination, "green")
    answers = answers_for(**combination)
    context = [f"{key}={value}" for key, value in combination.items()]
    cookiecutter = str(Path(sys.executable).with_name("cookiecutter"))
    project = root / answers["project_slug"]
    commands = {
        "bake": ([cookiecutter, "--no-input", str(TEMPLATE), *context], root),
        "install": ([*UV, "sync", "--quiet"], project),
        "tests": ([*UV, "run", "pytest", "-q", "-p", "no:cacheprovider"], project),
    }
    seconds = {}
    for step in STEPS:
        command, cwd = commands[step]
        start = time.perf_counter()
        output = run(command, cwd, environment)
        seconds[step] = time.perf_counter() - start
        if step == "tests" and (" passed" not in output or "failed" in output):
            raise SystemExit(f"the tests did not pass:\n{output}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (median)")
    runs = parser.parse_args().runs
    from harness import MATRIX, answers_for

    default = {option: answers_for()[option] for option in MATRIX}
    postgresql, postgresql_label = postgresql_combination()
    cases = [
        ("default: " + ", ".join(f"{o}={default[o]}" for o in MATRIX), default),
        (postgresql_label, postgresql),
    ]
    rows = []
    for label, combination in cases:
        samples = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as root:
                samples.append(time_once(combination, Path(root)))
        medians = {step: statistics.median(s[step] for s in samples) for step in STEPS}
        total = statistics.median(sum(s.values()) for s in samples)
        rows.append((label, *(f"{medians[step]:.1f} s" for step in STEPS), f"{total:.1f} s"))
        print(rows[-1], flush=True)
    body = common.table(["combination", *STEPS, "to green"], rows)
    body += (
        f"\n\nMedian of {runs} runs each, each from an empty folder: bake with "
        "`cookiecutter --no-input`, `uv sync` (uv's cache warm), `uv run pytest` (its own "
        "suite, against the machine's PostgreSQL where the combination has it)."
    )
    common.write_result(
        "time_to_green", "Time to green", f"python bench/time_to_green.py --runs {runs}", body
    )


if __name__ == "__main__":
    main()
