"""Each combination installed once per test process, as its README's first steps do: baked,
then `uv sync` (the development group too), which writes its lock file. Its own suite
(test_generated_suite.py), the services of the HTTP contract, reliability and deployment
tiers (services.py) and the image the deployment commands build from the lock file all
use that one install; the scheduler (conftest.CombinationScheduling) keeps the tests of a
combination on one process.

They share it without depending on each other's order: the suite writes nothing into the
project but bytecode (its databases, queues and temporary files are its own, pytest runs
without its cache and mypy's cache is MYPY_CACHE_DIR), the services run from directories
of their own and are configured by the environment alone, and the image is built from
what .dockerignore lets through.
"""

from __future__ import annotations

from pathlib import Path

from harness import bake, combination_id, environment_for, sync


class Installs:
    """The installed project of each combination, made on first use under root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.projects: dict[str, Path] = {}

    def __call__(self, combination: dict[str, str]) -> Path:
        key = combination_id(combination)
        if key not in self.projects:
            output = self.root / key
            output.mkdir(parents=True)
            project = bake(output, **combination)
            sync(project, environment_for(combination))
            self.projects[key] = project
        return self.projects[key]
