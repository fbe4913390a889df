"""The real tier: install each baked project with uv and run its own test suite against the
real database on this machine, as its README tells a user to."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from harness import REQUIRE_SERVICES, UV, bake, environment_for, run

pytestmark = pytest.mark.real


def test_generated_project_passes_its_own_tests(combination, tmp_path: Path) -> None:
    # A bake of its own: installing and testing writes into the project.
    project = bake(tmp_path, **combination)
    environment = environment_for(combination)
    run([*UV, "sync", "--quiet"], project, environment)
    # Type-checked as its CI does (PROJECT_CHECKS).
    run([*UV, "run", "mypy"], project, environment)
    output = run([*UV, "run", "pytest", "-p", "no:cacheprovider"], project, environment)
    summary = re.findall(r"^=+ (.*) in [\d.]+s.* =+$", output, re.MULTILINE)[-1]
    assert " passed" in summary
    assert "failed" not in summary
    if REQUIRE_SERVICES:
        assert "skipped" not in summary, output


def test_pre_commit_hooks_pass_as_generated(tmp_path: Path) -> None:
    # The hooks call the project's own tools through uv, as its CI does: as generated,
    # everything passes and nothing is rewritten.
    combination = {"framework": "fastapi", "database": "postgresql"}
    project = bake(tmp_path, **combination)
    environment = environment_for(combination)
    # The hooks find uv on PATH, as on a developer's machine.
    environment["PATH"] = f"{Path(UV[0]).parent}{os.pathsep}{environment['PATH']}"
    environment["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit")
    run(["git", "init", "--quiet"], project, environment)
    run(["git", "add", "--all"], project, environment)
    run([*UV, "sync", "--quiet"], project, environment)
    output = run([sys.executable, "-m", "pre_commit", "run", "--all-files"], project, environment)
    assert re.findall(r"^(.+?)\.+Passed$", output, re.MULTILINE) == [
        "ruff check",
        "ruff format",
        "mypy",
    ], output
