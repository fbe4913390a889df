"""Generation: every valid combination bakes, completely, the same with or without hooks."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from harness import (
    CHOICES,
    FACTS,
    HOOK_WRITTEN,
    POST_GEN,
    VALID_COMBINATIONS,
    bake,
    combination_id,
    files_of,
)

# Jinja left in the output: an unrendered variable, tag or comment. `${{` is GitHub
# Actions' own syntax and allowed, and so is `{{ $`, Prometheus's in the alerts'
# annotations (`{{ $value }}`, `{{ $labels.job }}`), which no Jinja template can be.
UNRENDERED = re.compile(r"cookiecutter\.|(?<!\$)\{\{(?! \$)|\{%|\{#")


def test_every_combination_bakes_without_unrendered_template_code(baked, combination) -> None:
    project = baked(combination)
    leftovers = [
        f"{name}: {match.group()!r}"
        for name, content in files_of(project).items()
        for match in [UNRENDERED.search(content.decode(errors="replace"))]
        if match
    ]
    leftovers += [str(p) for p in project.rglob("*") if UNRENDERED.search(p.name)]
    assert not leftovers


def test_no_empty_directories_are_left(baked, combination) -> None:
    project = baked(combination)
    assert not [str(d) for d in project.rglob("*") if d.is_dir() and not any(d.iterdir())]


def test_without_hooks_the_same_files_are_generated(baked, combination, tmp_path: Path) -> None:
    # Backstage's fetch:cookiecutter and --accept-hooks no run no hooks: the choice of files
    # must come from rendering alone, and the files must not depend on the run.
    with_hooks = files_of(baked(combination))
    without_hooks = files_of(bake(tmp_path, accept_hooks=False, **combination))
    for name in HOOK_WRITTEN:
        assert name in with_hooks
        del with_hooks[name]
    assert with_hooks.keys() == without_hooks.keys()
    assert [n for n in with_hooks if with_hooks[n] != without_hooks[n]] == []


def dependencies_of(project: Path, group: str | None = None) -> set[str]:
    """The distribution names a project requires, or its dependency group requires."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    requirements = (
        pyproject["dependency-groups"][group] if group else pyproject["project"]["dependencies"]
    )
    return {re.split(r"[\[<>=!~ ]", r, maxsplit=1)[0] for r in requirements}


def distributions(requirements: list[str]) -> set[str]:
    """The distribution names of a facts table's requirement lines (its comments left out)."""
    return {re.split(r"[\[<>=!~ ]", r, maxsplit=1)[0] for r in requirements if r[0] != "#"}


def expected_dependencies(combination: dict[str, str]) -> set[str]:
    """What the facts table says a combination requires: its framework's distributions, its
    framework's ORM and its database's driver for that ORM when it has a database, and its
    worker's distributions for its broker, and every part's."""
    framework = FACTS["framework"][combination["framework"]]
    database = combination["database"]
    requirements = list(framework["requirements"])
    if database != "none":
        requirements += FACTS["orm"][framework["orm"]]["requirements"]
        requirements += FACTS["database"][database]["drivers"][framework["orm"]]
    requirements += FACTS["worker"][combination["worker"]]["requirements"][combination["broker"]]
    for part in FACTS["part"].values():
        requirements += part["requirements"]
    return distributions(requirements)


def every_table_distribution() -> set[str]:
    found = set()
    for table in FACTS.values():
        for facts in table.values():
            for key in ("requirements", "dev_requirements"):
                lists = facts.get(key, [])
                for requirements in lists.values() if isinstance(lists, dict) else [lists]:
                    found |= distributions(requirements)
            for requirements in facts.get("drivers", {}).values():
                found |= distributions(requirements)
    return found


# What the code of a project must never import or mention, but for its own worker (a test
# keeps its workers those of the facts table).
WORKER_MODULES = {
    "celery": rb"\b(celery|kombu)\b",
    "rq": rb"\b(rq|Retry\(max)\b",
    "dramatiq": rb"\b(dramatiq|pika)\b",
}
# What a framework's projects import or mention. A project mentions nothing that only other
# frameworks use (gunicorn serves Flask and Django alike; Django has an ORM of its own).
FRAMEWORK_MODULES = {
    "fastapi": {
        "fastapi",
        "uvicorn",
        "starlette",
        "httpx",
        "httpx2",
        "openapi_ui_bundles",
        "sqlalchemy",
        "alembic",
    },
    "flask": {
        "flask",
        "flask_openapi3",
        "gunicorn",
        "werkzeug",
        "openapi_ui_bundles",
        "sqlalchemy",
        "alembic",
    },
    "django": {"django", "gunicorn", "asgiref", "sqlparse", "openapi_ui_bundles"},
}


def test_only_the_dependencies_the_choices_need(baked, combination) -> None:
    project = baked(combination)
    chosen = dependencies_of(project) & every_table_distribution()
    assert chosen == expected_dependencies(combination)
    # Distributions the table does not know of are the same in every project.
    assert dependencies_of(project) - every_table_distribution() == set()
    framework = FACTS["framework"][combination["framework"]]
    worker = FACTS["worker"][combination["worker"]]
    chosen_dev = dependencies_of(project, "dev") & every_table_distribution()
    assert chosen_dev == distributions(framework["dev_requirements"] + worker["dev_requirements"])


def test_the_worker_brings_its_brokers_client(baked, combination) -> None:
    # The broker's client comes with the worker's extra, or with the worker itself.
    pyproject = (baked(combination) / "pyproject.toml").read_text()
    requirements = FACTS["worker"][combination["worker"]]["requirements"][combination["broker"]]
    for requirement in requirements:
        assert f'"{requirement}"' in pyproject
    if combination["worker"] in ("celery", "dramatiq") and combination["broker"] == "redis":
        assert f'"{combination["worker"]}[redis]' in pyproject
    if combination["worker"] == "dramatiq" and combination["broker"] == "rabbitmq":
        assert '"dramatiq[rabbitmq]' in pyproject


def test_no_code_of_another_worker_is_generated(baked, combination) -> None:
    project = baked(combination)
    others = [w for w in WORKER_MODULES if w != combination["worker"]]
    mentions = [
        f"{name}: {match.group().decode()}"
        for name, content in files_of(project).items()
        if name.endswith((".py", ".toml"))
        for other in others
        for match in [re.search(WORKER_MODULES[other], content)]
        if match
    ]
    assert mentions == []
    if combination["worker"] == "none":
        assert not [
            n for n, c in files_of(project).items() if re.search(rb"BROKER|heartbeat|\bworker\b", c)
        ]


@pytest.mark.parametrize("worker", ["none", "celery", "dramatiq"])
def test_the_broker_answer_changes_nothing_without_a_worker_and_all_with_one(
    baked, worker: str
) -> None:
    combination = {"framework": "flask", "database": "sqlite", "worker": worker}
    on_redis = files_of(baked({**combination, "broker": "redis"}))
    on_rabbitmq = files_of(baked({**combination, "broker": "rabbitmq"}))
    # The files post_gen writes hold fresh secrets: different in every bake.
    for files in (on_redis, on_rabbitmq):
        for _example, written in POST_GEN.SECRET_FILES:
            files.pop(written)
    if worker == "none":
        assert on_redis == on_rabbitmq
    else:
        assert on_redis != on_rabbitmq
        assert "redis://" in on_redis[".env.example"].decode()
        assert "amqp://" in on_rabbitmq[".env.example"].decode()


def test_django_is_type_checked_with_its_plugin_and_settings(baked, combination) -> None:
    # django-stubs' plugin learns the models from the settings the tests also run with.
    pyproject = tomllib.loads((baked(combination) / "pyproject.toml").read_text())["tool"]
    django = combination["framework"] == "django"
    assert ("mypy_django_plugin.main" in pyproject["mypy"]["plugins"]) == django
    assert ("django-stubs" in pyproject) == django
    if django:
        settings_module = pyproject["pytest"]["ini_options"]["DJANGO_SETTINGS_MODULE"]
        assert pyproject["django-stubs"]["django_settings_module"] == settings_module


def test_no_code_of_another_framework_is_generated(baked, combination) -> None:
    project = baked(combination)
    framework = combination["framework"]
    others = [modules for other, modules in FRAMEWORK_MODULES.items() if other != framework]
    foreign = set().union(*others) - FRAMEWORK_MODULES[framework]
    pattern = re.compile(rf"\b({'|'.join(sorted(foreign))})\b".encode(), re.IGNORECASE)
    mentions = [
        f"{name}: {match.group().decode()}"
        for name, content in files_of(project).items()
        if name.endswith((".py", ".toml"))
        for match in [pattern.search(content)]
        if match
    ]
    assert mentions == []


@pytest.mark.parametrize("framework", CHOICES["framework"])
def test_without_a_database_no_database_code_is_generated(baked, framework: str) -> None:
    project = baked({"framework": framework, "database": "none"})
    mentions = [
        name
        for name, content in files_of(project).items()
        if re.search(rb"sqlalchemy|alembic|DATABASE_URL|migrat", content, re.IGNORECASE)
    ]
    assert mentions == []


LICENSE_OPENINGS = {
    "MIT": "MIT License\n\nCopyright (c) Your Name\n",
    "BSD-3-Clause": "BSD 3-Clause License\n\nCopyright (c) Your Name\n",
    "Apache-2.0": "\n                                 Apache License\n",
}


@pytest.mark.parametrize("license_name", CHOICES["license"])
def test_license(baked, license_name: str) -> None:
    project = baked({"framework": "fastapi", "database": "sqlite"}, license=license_name)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    if license_name == "Proprietary":
        assert not (project / "LICENSE").exists()
        assert pyproject["license"] == "LicenseRef-Proprietary"
    else:
        assert pyproject["license"] == license_name
        assert pyproject["license-files"] == ["LICENSE"]
        assert (project / "LICENSE").read_text().startswith(LICENSE_OPENINGS[license_name])
    # The API's document names the same license (the real tier proves it is the served one).
    document = json.loads((project / "openapi.json").read_text())
    expression = pyproject["license"]
    assert document["info"]["license"] == {"name": expression, "identifier": expression}


def test_free_text_answers_are_escaped_where_they_land(baked) -> None:
    text = 'Say "hi" \\ & <tags> it\'s'
    project = baked(
        {"framework": "fastapi", "database": "sqlite"},
        project_name="Quoted Service",
        description=text,
        author_name=text,
    )
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["description"] == text
    assert pyproject["authors"] == [{"name": text, "email": "you@example.com"}]
    openapi = (project / "src" / "quoted_service" / "openapi.py").read_text()
    assert 'TITLE = "Quoted Service"' in openapi


@pytest.mark.parametrize(("example_name", "written"), POST_GEN.SECRET_FILES)
def test_secret_files_have_fresh_secrets_and_are_private(
    baked, tmp_path: Path, example_name: str, written: str
) -> None:
    first = baked({"framework": "fastapi", "database": "postgresql"})
    second = bake(tmp_path, framework="fastapi", database="postgresql")
    secrets = []
    for project in (first, second):
        env = (project / written).read_text()
        example = (project / example_name).read_text()
        assert POST_GEN.SECRET_PLACEHOLDER in example
        assert POST_GEN.SECRET_PLACEHOLDER not in env
        assert stat.S_IMODE((project / written).stat().st_mode) == 0o600
        # Everything but the secrets is as in the example.
        assert [line.split("=")[0] for line in env.splitlines()] == [
            line.split("=")[0] for line in example.splitlines()
        ]
        secrets.append(re.search(r"^SECRET_KEY=(.+)$", env, re.MULTILINE).group(1))
    assert secrets[0] != secrets[1]
    assert all(len(secret) >= 32 for secret in secrets)


def test_only_the_hook_written_files_are_ignored_by_git(baked, tmp_path: Path) -> None:
    project = baked({"framework": "fastapi", "database": "sqlite"})
    repository = tmp_path / "repository"
    shutil.copytree(project, repository)
    subprocess.run(["git", "init", "-q"], cwd=repository, check=True)
    result = subprocess.run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard"],
        cwd=repository,
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(result.stdout.split()) == HOOK_WRITTEN


def test_post_gen_hook_run_twice_keeps_the_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = bake(tmp_path, framework="fastapi", database="sqlite")
    before = (project / ".env").read_text()
    (project / "emptied").mkdir()
    monkeypatch.chdir(project)
    assert POST_GEN.main({"project_slug": project.name, "database": "sqlite"}) == 0
    assert (project / ".env").read_text() == before
    assert not (project / "emptied").exists()


def test_generation_is_reproducible(baked, tmp_path: Path) -> None:
    combination = {"framework": "fastapi", "database": "postgresql"}
    first = files_of(baked(combination))
    second = files_of(bake(tmp_path, **combination))
    for name in HOOK_WRITTEN:
        first.pop(name), second.pop(name)
    assert first == second


def test_the_module_oracles_know_every_worker_and_framework() -> None:
    assert set(WORKER_MODULES) == set(CHOICES["worker"]) - {"none"}
    assert set(FRAMEWORK_MODULES) == set(CHOICES["framework"])


# Imports of a worker module: `from .worker import x`, `from pkg import worker`,
# `import pkg.worker`.
WORKER_IMPORT = re.compile(
    rb"^\s*(from \S*\bworker import|from \S+ import .*\bworker\b|import \S*\bworker\b)", re.M
)


@pytest.mark.parametrize(
    "combination", [c for c in VALID_COMBINATIONS if c["worker"] != "none"], ids=combination_id
)
def test_the_web_side_does_not_import_the_worker(baked, combination) -> None:
    # The web service queues work through task_queue.py; only the worker's own commands
    # (cli.py, which imports it when they run) load the worker module.
    project = baked(combination)
    importers = sorted(
        name
        for name, content in files_of(project).items()
        if name.startswith("src/") and name.endswith(".py") and WORKER_IMPORT.search(content)
    )
    assert importers == [f"src/{project.name.replace('-', '_')}/cli.py"]
