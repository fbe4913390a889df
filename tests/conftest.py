"""Fixtures shared by every tier; the helpers behind them are in harness.py."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from artifacts import Variant, render_variants, tool
from harness import VALID_COMBINATIONS, Baker, bake, combination_id
from installs import Installs
from services import Services


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
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installs:
    """Each combination installed once per test process (installs.py)."""
    return Installs(tmp_path_factory.mktemp("installs"))


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory, installed: Installs) -> Iterator[Services]:
    """Each combination's production server (and worker), started once per test process for
    the tests that talk to them over HTTP (services.py)."""
    services = Services(tmp_path_factory.mktemp("services"), installed)
    yield services
    services.stop_all()


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


def combination_of(nodeid: str) -> str:
    """The id of the combination a test runs for (its parameters end with it), else the
    test's own id."""
    parameters = nodeid.rpartition("[")[2].removesuffix("]") if nodeid.endswith("]") else ""
    for combination in COMBINATION_IDS:
        if parameters == combination or parameters.endswith(f"-{combination}"):
            return combination
    return nodeid


class CombinationScheduling:
    """Sends the tests of one combination to one test process, which then bakes, installs
    and starts it once (the fixtures keep them per process); any other test is a unit of its
    own. The tests of their own go first: the longest single tests (the policy scan, the
    strict schemas, the first steps) are among them, and would otherwise be left to run
    alone at the end. The combinations follow, largest first, so that the run ends on the
    smallest.

    Written against xdist's public scheduler protocol (xdist.scheduler.protocol.Scheduling,
    returned from the pytest_xdist_make_scheduler hook): xdist's own grouping, `--dist
    loadgroup` with `xdist_group` marks, does not group with pytest 9.2 and pytest-xdist
    3.8.0 (the newest release), wherever the marks are added. xdist tags a test's group onto
    `item._nodeid`, which pytest 9.2 no longer reads (a node keeps its id in `item._id`), so
    the controller gets the plain ids and spreads a group over every process
    (pytest-dev/pytest-xdist#1386, open)."""

    def __init__(self, config: pytest.Config, log: Any) -> None:
        self.config = config
        # The test processes to wait for, as --tx gives them (`-n` sets it): `N*spec` is N.
        self.numnodes = sum(
            int(count) if count.isdigit() else 1
            for count, _, _ in (spec.partition("*") for spec in config.getoption("tx"))
        )
        self.collections: dict[Any, list[str]] = {}
        # Per test process, the indices of the tests it was sent and has not finished.
        self.pending: dict[Any, list[int]] = {}
        self.collection: list[str] = []
        self.index: dict[str, int] = {}
        # The units still to send, largest first; None until the first schedule().
        self.units: list[list[str]] | None = None

    @property
    def nodes(self) -> list[Any]:
        return list(self.pending)

    @property
    def collection_is_completed(self) -> bool:
        # Every process has collected, so that all their collections are compared; one
        # replacing a crashed process joins when it has.
        return len(self.collections) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        return self.units == [] and not any(self.pending.values())

    @property
    def has_pending(self) -> bool:
        return bool(self.units) or any(self.pending.values())

    def add_node(self, node: Any) -> None:
        self.pending[node] = []

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        self.collections[node] = list(collection)
        if self.units is not None and self.collections[node] != self.collection:
            self._report_other_collection(node)

    def schedule(self) -> None:
        if self.units is None:
            self.collection = next(iter(self.collections.values()))
            self.index = {nodeid: index for index, nodeid in enumerate(self.collection)}
            units: dict[str, list[str]] = {}
            for nodeid in self.collection:
                units.setdefault(combination_of(nodeid), []).append(nodeid)
            self.units = sorted(units.values(), key=lambda unit: (len(unit) > 1, -len(unit)))
            for node, collection in self.collections.items():
                if collection != self.collection:
                    self._report_other_collection(node)
        for node in self.nodes:
            if node in self.collections:
                self._send_more(node)

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        self.pending[node].remove(item_index)
        self._send_more(node)

    def remove_node(self, node: Any) -> str | None:
        """Forget a process; if it crashed, the test it was running, and the others it was
        sent go to the processes left (or the one replacing it)."""
        self.collections.pop(node, None)
        pending = self.pending.pop(node)
        if not pending:
            return None
        crashed, *rest = pending
        assert self.units is not None
        if rest:
            self.units.insert(0, [self.collection[index] for index in rest])
        for other in self.nodes:
            if other in self.collections:
                self._send_more(other)
        return self.collection[crashed]

    def mark_test_pending(self, item: str) -> None:
        raise NotImplementedError

    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        raise NotImplementedError

    def _send_more(self, node: Any) -> None:
        """Keep a process more than two tests ahead: it holds back its last test until it
        knows the next one (or that there is none), to tear down only what that one does
        not share."""
        if node.shutting_down:
            return
        assert self.units is not None
        while self.units and len(self.pending[node]) <= 2:
            indices = [self.index[nodeid] for nodeid in self.units.pop(0)]
            self.pending[node] += indices
            node.send_runtest_some(indices)
        if not self.units:
            node.shutdown()

    def _report_other_collection(self, node: Any) -> None:
        """A process that collected other tests gets none, and the run fails."""
        missing = sorted(set(self.collection) ^ set(self.collections[node]))
        message = f"{node.gateway.id} collected other tests than the first process: {missing}"
        report = pytest.CollectReport(node.gateway.id, "failed", message, [])
        self.config.hook.pytest_collectreport(report=report)
        node.shutdown()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: two test processes per core (PYTEST_XDIST_AUTO_NUM_WORKERS, where set,
    decides instead). The real tier's processes spend much of their time waiting for the
    servers, workers and services they start: with one per core, the cores idle for part
    of the run."""
    if "PYTEST_XDIST_AUTO_NUM_WORKERS" in os.environ:
        return None
    return 2 * len(os.sched_getaffinity(0))


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
