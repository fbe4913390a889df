"""Validation: every invalid answer is refused before anything is written, with a message
that names the option, the value and what is valid, however cookiecutter is called."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException

from harness import (
    CHOICES,
    FACTS,
    INVALID_COMBINATIONS,
    PRE_GEN,
    TEMPLATE,
    answers_for,
    bake,
    combination_id,
)

# (extra context, the option the message must name). Each value is wrong in its own way.
INVALID_ANSWERS = [
    ({"project_slug": "My Service"}, "project_slug"),
    ({"project_slug": "-leading-dash"}, "project_slug"),
    ({"project_slug": "trailing-dash-"}, "project_slug"),
    ({"project_slug": "under_score"}, "project_slug"),
    ({"project_slug": "a" * 64}, "project_slug"),
    ({"project_slug": "../escape"}, "project_slug"),
    ({"project_slug": "2fa-gateway", "package_name": "twofa"}, "project_slug"),
    ({"package_name": "1st_service"}, "package_name"),
    ({"package_name": "class"}, "package_name"),
    ({"package_name": "has-dash"}, "package_name"),
    ({"package_name": "naïve"}, "package_name"),
    ({"package_name": "json"}, "package_name"),
    ({"package_name": "asyncio"}, "package_name"),
    ({"package_name": "fastapi"}, "package_name"),
    ({"package_name": "sqlalchemy"}, "package_name"),
    ({"package_name": "django"}, "package_name"),
    ({"package_name": "manage"}, "package_name"),
    ({"package_name": "tests"}, "package_name"),
    ({"project_name": "Two\nLines"}, "project_name"),
    ({"description": "first line\nsecond line"}, "description"),
    ({"author_email": "not-an-email"}, "author_email"),
    ({"author_email": "a@b"}, "author_email"),
    ({"author_email": "two words@example.com"}, "author_email"),
    ({"version": "v1"}, "version"),
    ({"version": "1.0-beta"}, "version"),
    ({"version": ""}, "version"),
    ({"worker": "celery", "database": "none"}, "worker"),
    ({"worker": "rq", "broker": "rabbitmq"}, "broker"),
    ({"owner": ""}, "owner"),
    ({"owner": "Platform Team"}, "owner"),
    ({"owner": "group:Default/platform"}, "owner"),
    ({"owner": "team-" + "a" * 60}, "owner"),
    ({"system": "payments/"}, "system"),
    ({"system": "-payments"}, "system"),
]


def ids_of(cases: list[tuple[dict, str]]) -> list[str]:
    return [f"{option}={extra[option]!r}"[:40] for extra, option in cases]


@pytest.mark.parametrize(("extra", "option"), INVALID_ANSWERS, ids=ids_of(INVALID_ANSWERS))
def test_rule_set_names_option_value_and_what_is_valid(extra: dict, option: str) -> None:
    found = PRE_GEN.violations(answers_for(**extra), CHOICES, FACTS)
    # A bad slug also makes a bad package name, which is derived from it.
    assert option in [v.option for v in found]
    message = PRE_GEN.report(found)
    assert f"  - {option} = {extra[option]!r}: must " in message


def test_defaults_are_valid() -> None:
    assert PRE_GEN.violations(answers_for(), CHOICES, FACTS) == []


@pytest.mark.parametrize(
    "combination", INVALID_COMBINATIONS, ids=[combination_id(c) for c in INVALID_COMBINATIONS]
)
def test_a_combination_no_worker_can_serve_is_refused_with_what_to_choose(
    combination: dict[str, str],
) -> None:
    found = PRE_GEN.violations(answers_for(**combination), CHOICES, FACTS)
    assert found
    for violation in found:
        assert violation.option in ("worker", "broker")
        assert "choose" in violation.expected


def test_rq_on_rabbitmq_names_both_options_and_the_alternatives() -> None:
    found = PRE_GEN.violations(answers_for(worker="rq", broker="rabbitmq"), CHOICES, FACTS)
    assert [str(v) for v in found] == [
        "broker = 'rabbitmq': must be redis for worker 'rq', which runs on Redis only; "
        "choose broker redis, or worker celery or dramatiq to use RabbitMQ"
    ]


def test_a_worker_without_a_database_suggests_one() -> None:
    found = PRE_GEN.violations(answers_for(worker="dramatiq", database="none"), CHOICES, FACTS)
    assert [v.option for v in found] == ["worker"]
    databases = [name for name in CHOICES["database"] if name != "none"]
    suggestion = re.search(r"choose database (.+), or worker none$", str(found[0]))
    assert suggestion, found[0]
    assert re.split(r", | or ", suggestion[1]) == databases


@pytest.mark.parametrize("framework", CHOICES["framework"])
def test_every_framework_runs_every_worker(framework: str) -> None:
    for worker in CHOICES["worker"]:
        answers = answers_for(framework=framework, database="postgresql", worker=worker)
        assert PRE_GEN.violations(answers, CHOICES, FACTS) == [], worker


@pytest.mark.parametrize("broker", CHOICES["broker"])
def test_the_broker_is_harmless_without_a_worker(broker: str) -> None:
    for database in CHOICES["database"]:
        answers = answers_for(worker="none", broker=broker, database=database)
        assert PRE_GEN.violations(answers, CHOICES, FACTS) == []


def test_a_choice_outside_its_list_is_refused() -> None:
    # Cookiecutter checks choices given on the command line itself; the hook checks them
    # again for callers that render answers without it (replay, cruft, an edited answers file).
    answers = {**answers_for(), "database": "oracle"}
    found = PRE_GEN.violations(answers, CHOICES, FACTS)
    assert [str(v) for v in found] == [
        "database = 'oracle': must be one of sqlite, postgresql, mysql, none"
    ]


def test_a_number_from_a_config_file_is_judged_not_crashed_on() -> None:
    found = PRE_GEN.violations({**answers_for(), "version": 1.5, "author_email": 7}, CHOICES, FACTS)
    assert [v.option for v in found] == ["author_email"]


def test_every_violation_is_reported_at_once(cookies) -> None:
    result = cookies.bake(
        template=str(TEMPLATE),
        extra_context={"project_slug": "Bad Slug", "author_email": "nope", "version": "x"},
    )
    assert isinstance(result.exception, FailedHookException)
    found = PRE_GEN.violations(
        answers_for(project_slug="Bad Slug", author_email="nope", version="x"), CHOICES, FACTS
    )
    assert sorted(v.option for v in found) == [
        "author_email",
        "package_name",
        "project_slug",
        "version",
    ]
    assert "4 answers are invalid" in PRE_GEN.report(found)


@pytest.mark.parametrize(("extra", "option"), INVALID_ANSWERS, ids=ids_of(INVALID_ANSWERS))
def test_refused_bake_leaves_nothing_on_disk(tmp_path: Path, extra: dict, option: str) -> None:
    output = tmp_path / "out"
    output.mkdir()
    with pytest.raises(FailedHookException):
        bake(output, **extra)
    assert list(output.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["out"]


def cookiecutter_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The cookiecutter command, isolated from the user's configuration and replays."""
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={"COOKIECUTTER_CONFIG": str(cwd / "none.yaml"), "PATH": "/usr/bin:/bin"},
    )


def run_cookiecutter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return cookiecutter_cli("--no-input", str(TEMPLATE), *args, cwd=cwd)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "none.yaml").write_text(
        f"cookiecutters_dir: {tmp_path / '.cc'}\nreplay_dir: {tmp_path / '.replay'}\n"
    )
    (tmp_path / "out").mkdir()
    return tmp_path


def test_command_line_message_comes_first_and_stands_alone(workdir: Path) -> None:
    result = run_cookiecutter(
        "-o", "out", "project_slug=bad-slug-", "package_name=ok", "author_email=nope", cwd=workdir
    )
    assert result.returncode == 1
    message = result.stderr[: result.stderr.find("Traceback")]
    assert message.startswith("Cannot generate the project: 2 answers are invalid.\n")
    assert "  - project_slug = 'bad-slug-': must be a DNS-1123 label" in message
    assert "  - author_email = 'nope': must look like an email address" in message
    assert message.rstrip().endswith("Nothing was generated. Run again with valid answers.")
    assert list((workdir / "out").iterdir()) == []


def test_config_file_answers_are_validated_the_same_way(workdir: Path) -> None:
    config = workdir / "team.yaml"
    config.write_text(
        f"cookiecutters_dir: {workdir / '.cc'}\nreplay_dir: {workdir / '.replay'}\n"
        "default_context:\n  project_name: Team Service\n  package_name: json\n"
    )
    result = run_cookiecutter("-o", "out", "--config-file", str(config), cwd=workdir)
    assert result.returncode == 1
    assert "package_name = 'json': must not shadow a standard library module" in result.stderr
    assert list((workdir / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        (
            "python_version: 3.12\n  framework: flask\n  database: postgresql\n",
            "python_version = 3.12: in default_context of {config}, must be exactly one of "
            '3.13, 3.12, 3.11 (a number there: write "3.12"); cookiecutter ignored it and the '
            "defaults after it (framework, database)",
        ),
        (
            "framework: Flask\n  database: postgresql\n",
            "framework = 'Flask': in default_context of {config}, must be exactly one of "
            "fastapi, flask, django; cookiecutter ignored it and the defaults after it "
            "(database)",
        ),
    ],
    ids=["a-number", "a-misspelt-choice"],
)
def test_a_config_file_choice_cookiecutter_would_drop_stops_the_bake(
    workdir: Path, defaults: str, message: str
) -> None:
    # Cookiecutter only warns about such a value and bakes the template's defaults for it and
    # every key after it (FastAPI on SQLite instead of Flask on PostgreSQL): the hook, which
    # cannot see the dropped answers, reads the config the command was given again.
    config = workdir / "team.yaml"
    config.write_text(f"replay_dir: {workdir / '.replay'}\ndefault_context:\n  {defaults}")
    # Relative to where the command was started, as a user writes it.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            str(TEMPLATE),
            "-o",
            "out",
            "--config-file",
            "team.yaml",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PWD": str(workdir)},
    )
    assert result.returncode == 1
    assert f"  - {message.format(config=config)}\n" in result.stderr
    assert list((workdir / "out").iterdir()) == []


def test_the_user_config_defaults_are_held_to_the_choices_too(workdir: Path) -> None:
    # The user config named by COOKIECUTTER_CONFIG (or ~/.cookiecutterrc) feeds the same
    # default_context, with the same hole.
    config = workdir / "none.yaml"
    config.write_text(config.read_text() + "default_context:\n  database: Postgres\n")
    result = run_cookiecutter("-o", "out", cwd=workdir)
    assert result.returncode == 1
    assert (
        f"database = 'Postgres': in default_context of {config}, must be exactly one of "
        "sqlite, postgresql, mysql, none; cookiecutter ignored it\n" in result.stderr
    )
    assert list((workdir / "out").iterdir()) == []
    # --default-config reads no user config: nothing to hold against the bake.
    assert run_cookiecutter("-o", "out", "--default-config", cwd=workdir).returncode == 0


def test_valid_config_file_choices_are_taken(workdir: Path) -> None:
    config = workdir / "team.yaml"
    config.write_text(
        f"replay_dir: {workdir / '.replay'}\n"
        'default_context:\n  python_version: "3.12"\n  framework: flask\n  database: postgresql\n'
    )
    result = run_cookiecutter("-o", "out", "--config-file", str(config), cwd=workdir)
    assert result.returncode == 0, result.stderr
    pyproject = (workdir / "out" / "my-service" / "pyproject.toml").read_text()
    assert '"flask' in pyproject
    assert '"psycopg' in pyproject


def test_unknown_choice_on_the_command_line_names_the_choices(workdir: Path) -> None:
    # Refused by cookiecutter itself, before any hook runs; nothing is written.
    result = run_cookiecutter("-o", "out", "database=oracle", cwd=workdir)
    assert result.returncode != 0
    assert "oracle provided for choice variable database" in result.stderr
    assert "'sqlite', 'postgresql', 'mysql', 'none'" in result.stderr
    assert list((workdir / "out").iterdir()) == []


def test_empty_project_name_is_refused_cleanly(workdir: Path) -> None:
    result = run_cookiecutter("-o", "out", "project_name=!!!", cwd=workdir)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert list((workdir / "out").iterdir()) == []


def test_replayed_answers_are_validated_too(workdir: Path) -> None:
    # --replay skips cookiecutter's own check of the choices: the hook must catch them.
    assert run_cookiecutter("-o", "first", cwd=workdir).returncode == 0
    replay = workdir / ".replay" / f"{TEMPLATE.name}.json"
    context = json.loads(replay.read_text())
    context["cookiecutter"]["database"] = "oracle"
    edited = workdir / "edited.json"
    edited.write_text(json.dumps(context))
    result = cookiecutter_cli("--replay-file", str(edited), str(TEMPLATE), "-o", "out", cwd=workdir)
    assert result.returncode == 1
    assert "database = 'oracle': must be one of sqlite, postgresql, mysql, none" in result.stderr
    assert list((workdir / "out").iterdir()) == []


@pytest.mark.parametrize(
    "answers",
    [
        {"owner": "group:default/platform-team", "system": "payments"},
        {"owner": "user:jane.doe", "system": "system:billing/invoices"},
        {"owner": "Team_42", "system": ""},
    ],
)
def test_catalog_references_of_every_form_are_accepted(answers: dict) -> None:
    assert PRE_GEN.violations(answers_for(**answers), CHOICES, FACTS) == []
