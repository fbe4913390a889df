"""The real tier: install each baked project with uv and run its own test suite against the
real database on this machine, as its README tells a user to."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from harness import (
    IGNORED,
    REQUIRE_SERVICES,
    UV,
    VALID_COMBINATIONS,
    bake,
    broker_state_of_queues,
    combination_id,
    environment_for,
    run,
    sync,
)
from installs import Installs

pytestmark = pytest.mark.real


def assert_tests_passed(output: str) -> None:
    summary = re.findall(r"^=+ (.*) in [\d.]+s.* =+$", output, re.MULTILINE)[-1]
    assert " passed" in summary
    assert "failed" not in summary
    if REQUIRE_SERVICES:
        assert "skipped" not in summary, output


def test_generated_project_passes_its_own_tests(combination, installed: Installs) -> None:
    # Baked and installed as its README says (installs.py), once for every tier.
    project = installed(combination)
    environment = environment_for(combination)
    # Type-checked as its CI does (PROJECT_CHECKS).
    run([*UV, "run", "mypy"], project, environment)
    assert_tests_passed(run([*UV, "run", "pytest", "-p", "no:cacheprovider"], project, environment))
    assert_broker_left_clean(combination, environment)


def assert_broker_left_clean(combination: dict[str, str], environment: dict[str, str]) -> None:
    """The suite ran on queues of its own, `test-<WORKER_QUEUE>-<its pid>`, and removed them
    with all they held: nothing of them stays on the shared broker."""
    if combination["worker"] != "none":
        prefix = f"test-{environment['WORKER_QUEUE']}-"
        assert broker_state_of_queues(combination["broker"], prefix) == []


def each_value_once(
    combinations: list[dict[str, str]], options: tuple[str, ...]
) -> list[dict[str, str]]:
    """A few of the combinations that between them give every option each of its values (an
    ignored one only where it means something): the one adding most values not yet given
    first, of those the one giving most."""

    def given(combination: dict[str, str]) -> set[tuple[str, str]]:
        return {
            (option, combination[option])
            for option in options
            if not any(
                option == ignored and combination[other] == value
                for ignored, other, value in IGNORED
            )
        }

    needed = set().union(*map(given, combinations))
    chosen = []
    while needed:
        best = max(combinations, key=lambda c: (len(given(c) & needed), len(given(c))))
        chosen.append(best)
        needed -= given(best)
    return chosen


# The configuration CI gives changes with the database and the broker (and what the settings
# make of it, with the worker), not with each pairing of them.
DJANGO_COMBINATIONS = each_value_once(
    [c for c in VALID_COMBINATIONS if c["framework"] == "django"], ("database", "worker", "broker")
)


@pytest.mark.parametrize("combination", DJANGO_COMBINATIONS, ids=combination_id)
def test_django_checks_pass_with_the_configuration_ci_gives(combination, tmp_path: Path) -> None:
    # A checkout has no .env, as a bake without hooks: Django's settings, which mypy's plugin
    # and the tests load, get their configuration from the CI jobs' environment alone.
    project = bake(tmp_path, accept_hooks=False, ci="github", **combination)
    assert not (project / ".env").exists()
    jobs = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    environment = environment_for(combination)
    sync(project, environment)
    # Nothing connects while type checking: the lint job's database URL is used as it is.
    run([*UV, "run", "mypy"], project, {**environment, **jobs["lint"]["env"]})
    tests_environment = {**environment, **jobs["test"]["env"]}
    # The servers of this machine, in a database of this run's own, instead of CI's service
    # containers; and services are required only where this run requires them.
    if "DATABASE_URL" in environment:
        tests_environment["DATABASE_URL"] = environment["DATABASE_URL"]
    if not REQUIRE_SERVICES:
        del tests_environment["REQUIRE_SERVICES"]
    assert_tests_passed(
        run([*UV, "run", "pytest", "-p", "no:cacheprovider"], project, tests_environment)
    )
    assert_broker_left_clean(combination, tests_environment)


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
    sync(project, environment)
    output = run([sys.executable, "-m", "pre_commit", "run", "--all-files"], project, environment)
    assert re.findall(r"^(.+?)\.+Passed$", output, re.MULTILINE) == [
        "ruff check",
        "ruff format",
        "mypy",
    ], output
