"""The real tier: install each baked project with uv and run its own test suite against the
real database on this machine, as its README tells a user to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from uv import find_uv_bin

from harness import REQUIRE_SERVICES, bake, combination_id

pytestmark = pytest.mark.real

# uv from the template's own requirements, whatever PATH holds. The binary itself: its
# Python wrapper exports this virtual environment to the project it runs.
UV = [find_uv_bin()]

# The servers of the development and CI machines (see ../shared/DESIGN.md).
SERVER_URLS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/{name}",
    "mysql": "mysql://root@127.0.0.1:3306/{name}",
}


def environment_for(combination: dict[str, str]) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        # The project's own configuration comes from its .env; the template's session
        # must not leak into it.
        if not key.startswith(("VIRTUAL_ENV", "PYTEST_", "COOKIECUTTER"))
    }
    # Never download an interpreter: use the one running these tests.
    environment.update({"UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON": sys.executable})
    if combination["database"] in SERVER_URLS:
        # Unique per combination and per run: parallel runs on one server do not collide.
        name = f"tmpl_{combination_id(combination).replace('-', '_')}_{os.getpid()}"
        environment["DATABASE_URL"] = SERVER_URLS[combination["database"]].format(name=name)
    return environment


def run(command: list[str], project: Path, environment: dict[str, str]) -> str:
    result = subprocess.run(
        command,
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return output


def test_generated_project_passes_its_own_tests(combination, tmp_path: Path) -> None:
    # A bake of its own: installing and testing writes into the project.
    project = bake(tmp_path, **combination)
    environment = environment_for(combination)
    run([*UV, "sync", "--quiet"], project, environment)
    output = run([*UV, "run", "pytest", "-p", "no:cacheprovider"], project, environment)
    summary = re.findall(r"^=+ (.*) in [\d.]+s.* =+$", output, re.MULTILINE)[-1]
    assert " passed" in summary
    assert "failed" not in summary
    if REQUIRE_SERVICES:
        assert "skipped" not in summary, output
