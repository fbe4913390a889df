"""Benchmark, not a test: wall time and peak memory of a bake, for the default answers and for
the largest valid combination (the one that writes most files), each as a ratio to a floor
measured in the same run: cookiecutter baking a one-file template. Every figure is the median
of several runs, each in a fresh process (peak memory is that process's maximum resident set).

    python bench/bake.py [--runs N]

Writes bench/results/bake.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

# Running as the child that measures one bake: `bake.py --child TEMPLATE JSON OUTPUT`.
CHILD = "--child"


def child(template: str, extra_json: str, output: str) -> None:
    """Bake once, then report the bake's wall time and this process's peak memory."""
    from cookiecutter.main import cookiecutter

    start = time.perf_counter()
    project = cookiecutter(
        template,
        no_input=True,
        extra_context=json.loads(extra_json),
        output_dir=output,
        config_file=str(Path(output) / "cookiecutterrc.yaml"),
    )
    seconds = time.perf_counter() - start
    files = sum(1 for path in Path(project).rglob("*") if path.is_file())
    # ru_maxrss is in KiB on Linux.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak": peak, "files": files}))


def measure_once(template: Path, extra: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as output:
        config = Path(output) / "cookiecutterrc.yaml"
        config.write_text(
            f"cookiecutters_dir: {output}/.cookiecutters\nreplay_dir: {output}/.replay\n"
        )
        result = subprocess.run(
            [sys.executable, __file__, CHILD, str(template), json.dumps(extra), output],
            capture_output=True,
            text=True,
            check=True,
        )
    # The hook's next steps come first; the figures are the last line.
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(template: Path, extra: dict[str, str], runs: int) -> dict[str, float]:
    samples = [measure_once(template, extra) for _ in range(runs)]
    return {
        "seconds": statistics.median(s["seconds"] for s in samples),
        "peak": statistics.median(s["peak"] for s in samples),
        "files": samples[-1]["files"],
    }


def one_file_template(root: Path) -> Path:
    """The floor: the smallest template cookiecutter bakes, one file and one answer."""
    template = root / "floor"
    (template / "{{cookiecutter.name}}").mkdir(parents=True)
    (template / "cookiecutter.json").write_text('{"name": "floor"}\n')
    (template / "{{cookiecutter.name}}" / "README.md").write_text("# {{ cookiecutter.name }}\n")
    return template


def largest_combination() -> dict[str, str]:
    """The valid combination that writes most files (one bake of each, counted)."""
    from harness import TEMPLATE, VALID_COMBINATIONS

    counts = [
        (measure_once(TEMPLATE, combination)["files"], index)
        for index, combination in enumerate(VALID_COMBINATIONS)
    ]
    _files, index = max(counts)
    return VALID_COMBINATIONS[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="bakes of each (median)")
    runs = parser.parse_args().runs
    from harness import MATRIX, TEMPLATE

    largest = largest_combination()
    largest_name = ", ".join(f"{option}={largest[option]}" for option in MATRIX)
    with tempfile.TemporaryDirectory() as root:
        floor = measure(one_file_template(Path(root)), {}, runs)
    default = measure(TEMPLATE, {}, runs)
    biggest = measure(TEMPLATE, largest, runs)
    rows = [
        ("floor: one-file template", floor),
        ("default answers", default),
        (f"largest: {largest_name}", biggest),
    ]
    body = common.table(
        ["bake", "files", "wall time", "ratio to floor", "peak memory", "ratio to floor"],
        [
            (
                name,
                int(figures["files"]),
                f"{figures['seconds'] * 1000:.0f} ms",
                common.ratio(figures["seconds"], floor["seconds"]),
                f"{figures['peak'] / 2**20:.1f} MiB",
                common.ratio(figures["peak"], floor["peak"]),
            )
            for name, figures in rows
        ],
    )
    body += (
        f"\n\nMedian of {runs} bakes each, hooks included, each in a fresh Python process; "
        "wall time is the bake itself (cookiecutter's call), peak memory the process's "
        "maximum resident set (interpreter and imports included). The largest combination is "
        "the valid one that writes most files."
    )
    common.write_result("bake", "Bake", f"python bench/bake.py --runs {runs}", body)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == CHILD:
        child(*sys.argv[2:])
    else:
        main()
