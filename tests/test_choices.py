"""Each choice is handled in one place: the facts table holds every value of its option and
every fact its siblings have; a value it lacks fails the bake; no branch gives a new value
another value's text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cookiecutter.exceptions import UndefinedVariableInTemplate
from cookiecutter.main import cookiecutter

from harness import CHOICES, FACTS, TEMPLATE, isolated_config


@pytest.mark.parametrize("option", ["framework", "database", "worker", "broker", "ci", "license"])
def test_the_facts_table_has_every_value_of_its_option_and_no_other(option: str) -> None:
    assert list(FACTS[option]) == CHOICES[option]


@pytest.mark.parametrize(
    "option", ["framework", "orm", "database", "worker", "broker", "license", "part"]
)
def test_every_value_has_the_facts_its_siblings_have(option: str) -> None:
    # A new value that lacks a fact would fail only the bakes that look it up: caught here.
    table = {value: facts for value, facts in FACTS[option].items() if value != "none"}
    keys = {value: set(facts) for value, facts in table.items()}
    assert all(k == next(iter(keys.values())) for k in keys.values()), keys


def test_every_orm_a_framework_names_exists() -> None:
    for facts in FACTS["framework"].values():
        assert facts["orm"] in FACTS["orm"]
    for facts in FACTS["database"].values():
        assert set(facts["drivers"]) == set(FACTS["orm"])


# A value added to cookiecutter.json and not to the facts table: (option, value, a bake).
NEW_VALUES = [
    ("framework", "litestar", {}),
    ("database", "cockroachdb", {}),
    ("worker", "arq", {"database": "postgresql"}),
    ("broker", "nats", {"worker": "celery", "database": "postgresql"}),
]


@pytest.mark.parametrize(
    ("option", "value", "others"), NEW_VALUES, ids=[v for _, v, _ in NEW_VALUES]
)
def test_a_value_the_facts_table_lacks_fails_the_bake(
    option: str, value: str, others: dict[str, str], tmp_path: Path
) -> None:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=shutil.ignore_patterns(".*", "tests", "bench"))
    context = json.loads((template / "cookiecutter.json").read_text())
    context[option].append(value)
    (template / "cookiecutter.json").write_text(json.dumps(context))
    with pytest.raises(UndefinedVariableInTemplate) as failure:
        cookiecutter(
            str(template),
            no_input=True,
            accept_hooks=False,
            extra_context={**others, option: value},
            output_dir=str(tmp_path / "out"),
            config_file=str(isolated_config(tmp_path / "out")),
        )
    assert f"has no attribute '{value}'" in str(failure.value.message + str(failure.value.error))
