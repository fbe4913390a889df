"""The real tier: install each baked project with uv and run its own test suite against the
real database on this machine, as its README tells a user to."""

from __future__ import annotations

import re
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
