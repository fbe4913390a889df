"""What the benchmarks share: the template's test helpers on the path, the machine's
description, and writing a result as a Markdown table to bench/results/."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
# The template's test helpers (harness.py, the contract suite's services) are reused as they are.
sys.path.insert(0, str(BENCH.parent / "tests"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return float("nan")
    return pages / 2**30


def machine() -> str:
    """One line saying where and when the figures were taken."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {memory_gib():.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
        f"load average at the end {load}; {now}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# The maintainer's guide, which shows the latest figures.
GUIDE = BENCH.parent / "CONTRIBUTING.md"


def write_result(name: str, title: str, command: str, body: str) -> Path:
    """Print the result and keep it, with the machine's description, as bench/results/NAME.md;
    CONTRIBUTING.md's copy (between its `bench:NAME` markers) becomes this latest one."""
    text = f"### {title}\n\n`{command}`\n\nMachine: {machine()}\n\n{body}\n"
    print(f"\n{text}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    start, end = f"<!-- bench:{name} -->\n", f"<!-- /bench:{name} -->\n"
    guide = GUIDE.read_text()
    if start in guide and end in guide:
        before, _, rest = guide.partition(start)
        _, _, after = rest.partition(end)
        GUIDE.write_text(f"{before}{start}{text}{end}{after}")
    return path


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process and every process under it have used so far:
    a server's supervisor and its workers. Linux only (/proc)."""
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command's name, in parentheses, may hold spaces: fields follow its end.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        process = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(process)
        used[process] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, waiting = 0.0, [pid]
    while waiting:
        process = waiting.pop()
        total += used.get(process, 0.0)
        waiting += children.get(process, [])
    return total


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}x" if floor else "n/a"
