"""Fixtures shared by every tier; the helpers behind them are in harness.py."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

import pytest
from artifacts import Variant, render_variants, tool
from xdist.scheduler import LoadScopeScheduling

from harness import VALID_COMBINATIONS, Baker, bake, combination_id


@pytest.fixture(scope="session")
def baked(tmp_path_factory: pytest.TempPathFactory) -> Baker:
    """Bake each combination once per test process; tests share the result read-only."""
    projects: dict[str, Path] = {}

    def get(combination: dict[str, str], **extra: Any) -> Path:
        key = json.dumps({**combination, **extra}, sort_keys=True)
        if key not in projects:
            output = tmp_path_factory.mktemp(combination_id(combination))
            projects[key] = bake(output, **combination, **extra)
        return projects[key]

    return get


@pytest.fixture(scope="session")
def variants(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Variant]:
    """Every variant baked and rendered once per run: the first test process to get here
    does it, under a lock, and the others (pytest-xdist) read its result."""
    kubectl = tool("kubectl")
    shared = tmp_path_factory.getbasetemp()
    root = (shared.parent if worker_id != "master" else shared) / "artifacts"
    root.mkdir(exist_ok=True)
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = root / "variants.json"
        if not index.exists():
            index.write_text(json.dumps(render_variants(kubectl, root)))
        return {
            name: Variant(
                name,
                found["answers"],
                Path(found["project"]),
                {overlay: Path(path) for overlay, path in found["rendered"].items()},
            )
            for name, found in json.loads(index.read_text()).items()
        }


def parametrizes_itself(metafunc: pytest.Metafunc, name: str) -> bool:
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if name in (names.split(",") if isinstance(names, str) else names):
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that takes a `combination` runs for each valid one, unless it picks its own."""
    if "combination" in metafunc.fixturenames and not parametrizes_itself(metafunc, "combination"):
        metafunc.parametrize(
            "combination", VALID_COMBINATIONS, ids=[combination_id(c) for c in VALID_COMBINATIONS]
        )


# Longest first: the id a test's parameters end with.
COMBINATION_IDS = sorted((combination_id(c) for c in VALID_COMBINATIONS), key=len, reverse=True)


class CombinationScheduling(LoadScopeScheduling):
    """Sends the tests of one combination to one test process, which then bakes, installs and
    starts it once (the fixtures keep them per process). xdist's own grouping (xdist_group
    marks) no longer works with pytest 9.2, which ignores the node ids xdist rewrites."""

    def _split_scope(self, nodeid: str) -> str:
        parameters = nodeid.rpartition("[")[2].removesuffix("]") if nodeid.endswith("]") else ""
        for combination in COMBINATION_IDS:
            if parameters == combination or parameters.endswith(f"-{combination}"):
                return combination
        return nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> CombinationScheduling:
    return CombinationScheduling(config, log)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The container tier's figures (test_container.py): each image's size and build time."""
    figures = [
        value
        for report in terminalreporter.stats.get("passed", [])
        for name, value in report.user_properties
        if name == "container image"
    ]
    if figures:
        terminalreporter.section("container images")
        for line in sorted(figures):
            terminalreporter.write_line(line)
