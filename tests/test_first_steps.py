"""A new user's first steps, as the top README gives them: its first command, run as written
on a Python with pip and no virtual environment active, generates the default project, whose
own tests then pass with `uv run pytest` without a warning."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import TEMPLATE

pytestmark = pytest.mark.real

README = (TEMPLATE / "README.md").read_text()


def shell(command: str, cwd: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_the_readme_first_command_bakes_a_project_that_tests_green_without_warnings(
    tmp_path: Path,
) -> None:
    section = README[README.index("## Try it") :]
    command = re.search(r"```sh\n([^\n]+)\n```", section).group(1)
    # A user's own Python with pip: a fresh interpreter environment of its own, on PATH but
    # not activated (no VIRTUAL_ENV), and a home of its own (uv's tools and caches there).
    python = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "venv", python], check=True)
    home = tmp_path / "home"
    home.mkdir()
    environment = {
        "HOME": str(home),
        "PATH": f"{python / 'bin'}{os.pathsep}/usr/bin:/bin",
        # This machine's package downloads pass a TLS-intercepting proxy known to the
        # system's certificate store only; uv's own tests need no other setting.
        "UV_SYSTEM_CERTS": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        # pip's and uv's caches are the machine's (downloads once per machine).
        "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip"),
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv")),
    }
    work = tmp_path / "work"
    work.mkdir()
    result = shell(command.replace("path/to/this/template", str(TEMPLATE)), work, environment)
    assert result.returncode == 0, result.stdout + result.stderr
    project = work / "my-service"
    result = shell("uv run pytest -q -p no:cacheprovider", project, environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    assert "warning" not in result.stderr.lower(), result.stderr


def test_the_template_is_found_by_a_path_relative_to_where_cookiecutter_runs(
    tmp_path: Path,
) -> None:
    # As the README's `path/to/this/template` may be typed: the hooks read the template too.
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path)]
    result = subprocess.run(
        [*command, TEMPLATE.name], cwd=TEMPLATE.parent, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "my-service" / "pyproject.toml").is_file()
