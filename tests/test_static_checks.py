"""Static checks of what is generated: it lints, formats, parses and is tidy as generated."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from harness import TEMPLATE, files_of

# Rendered names change line lengths, and so how ruff would format a line: check the
# defaults and the longest names allowed (a 63-character slug and package).
LONGEST_NAME = "Customer Order Fulfilment and Billing Reconciliation Gateway 2"
NAMES = {"default-names": {}, "longest-names": {"project_name": LONGEST_NAME}}


def ruff(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("names", NAMES.values(), ids=NAMES.keys())
def test_generated_python_passes_ruff_as_generated(baked, combination, names) -> None:
    # The generated project's own ruff configuration, in its pyproject.toml, applies.
    project = baked(combination, **names)
    lint = ruff("check", ".", cwd=project)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    formatting = ruff("format", "--check", "--diff", ".", cwd=project)
    assert formatting.returncode == 0, formatting.stdout + formatting.stderr


def test_toml_and_yaml_files_parse(baked, combination) -> None:
    project = baked(combination)
    checked = 0
    for name, content in files_of(project).items():
        if name.endswith(".toml"):
            tomllib.loads(content.decode())
            checked += 1
        elif name.endswith((".yaml", ".yml")):
            list(yaml.safe_load_all(content))
            checked += 1
    assert checked


def test_text_files_are_tidy(baked, combination) -> None:
    # Whitespace control in the templates: no trailing spaces, no runs of blank lines
    # where a block was left out, one newline at the end.
    untidy = []
    for name, content in files_of(baked(combination)).items():
        text = content.decode()
        if text.startswith("\n"):
            untidy.append(f"{name}: starts with a blank line")
        if not text.endswith("\n") or text.endswith("\n\n"):
            untidy.append(f"{name}: does not end with exactly one newline")
        for number, line in enumerate(text.splitlines(), 1):
            if line != line.rstrip():
                untidy.append(f"{name}:{number}: trailing whitespace")
        python = name.endswith((".py", ".py.mako"))
        if "\n\n\n\n" in text or (not python and "\n\n\n" in text):
            untidy.append(f"{name}: a run of blank lines")
    assert untidy == []


def test_template_code_passes_ruff() -> None:
    lint = ruff("check", "hooks", "tests", cwd=TEMPLATE)
    assert lint.returncode == 0, lint.stdout
    formatting = ruff("format", "--check", "hooks", "tests", cwd=TEMPLATE)
    assert formatting.returncode == 0, formatting.stdout


def test_template_pins_the_ruff_it_checks_with() -> None:
    requirements = (TEMPLATE / "requirements.txt").read_text()
    generated = (TEMPLATE / "{{cookiecutter.project_slug}}" / "pyproject.toml").read_text()
    pinned = re.search(r"^ruff==(\S+)$", requirements, re.MULTILINE).group(1)
    assert f'"ruff=={pinned}"' in generated


def test_ci_runs_the_test_command_of_the_readme() -> None:
    readme = (TEMPLATE / "README.md").read_text()
    command = re.search(r"```sh\n(pip install -r requirements.txt[^\n]*)\n```", readme).group(1)
    ci = (TEMPLATE / ".ci" / "run").read_text()
    assert command in ci.splitlines()
    assert "export REQUIRE_SERVICES=1" in ci.splitlines()
