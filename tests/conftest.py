"""Fixtures shared by every tier; the helpers behind them are in harness.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import VALID_COMBINATIONS, bake, combination_id

Baker = Callable[..., Path]


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
