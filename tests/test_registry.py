"""Registry entry: template.yaml (a Backstage Software Template) asks what cookiecutter.json
asks, and what its fetch:cookiecutter step does yields the project cookiecutter generates."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.main import cookiecutter
from jsonschema import Draft7Validator

from harness import (
    CHOICES,
    COOKIECUTTER_JSON,
    HOOK_WRITTEN,
    IGNORED,
    INVALID_COMBINATIONS,
    PRE_GEN,
    TEMPLATE,
    VALID_COMBINATIONS,
    answers_for,
    bake,
    combination_id,
    files_of,
    isolated_config,
)

TEMPLATE_YAML: dict[str, Any] = yaml.safe_load((TEMPLATE / "template.yaml").read_text())

# Prompts the form asks only when another answer leaves them meaningful: the prompt, the
# prompt it depends on, and the answer of that one which leaves it out.
ASKED_ONLY_WHEN = {"broker": ("worker", "none")}
# Fields of the form that are no prompt: where to publish the new repository.
REGISTRY_ONLY = {"repoUrl"}
# A step value: a form field, with a fallback for a field the form may leave out.
PARAMETER = re.compile(r"\$\{\{ parameters\.(?P<name>\w+)(?: or '(?P<fallback>[^']*)')? \}\}")
SKELETON = "./{{cookiecutter.project_slug}}"


def form_fields(template: dict[str, Any]) -> dict[str, list[tuple[dict, bool, Any]]]:
    """Each field of the form: its schemas, whether each is required, and the condition
    under which it is asked: None, or (the field it depends on, the values that ask it)."""
    fields: dict[str, list[tuple[dict, bool, Any]]] = {}
    for page in template["spec"]["parameters"]:
        required = set(page.get("required", []))
        for name, schema in page.get("properties", {}).items():
            fields.setdefault(name, []).append((schema, name in required, None))
        for controller, dependency in page.get("dependencies", {}).items():
            for branch in dependency.get("oneOf", []):
                values = tuple(branch["properties"][controller]["enum"])
                branch_required = set(branch.get("required", []))
                for name, schema in branch["properties"].items():
                    if name != controller:
                        condition = (controller, values)
                        fields.setdefault(name, []).append(
                            (schema, name in branch_required, condition)
                        )
    return fields


def label_of(labels: dict[str, Any], name: str) -> str:
    label = labels.get(name, name)
    return label["__prompt__"] if isinstance(label, dict) else label


def expected_schema(name: str, default: Any, labels: dict[str, Any]) -> dict[str, Any]:
    expected: dict[str, Any] = {"title": label_of(labels, name), "type": "string"}
    if isinstance(default, list):
        expected |= {"enum": default, "default": default[0]}
        if isinstance(labels.get(name), dict):
            expected["enumNames"] = [labels[name][choice] for choice in default]
    elif "{{" not in default:
        expected["default"] = default
    if name in PRE_GEN.PATTERNS:
        expected["pattern"] = f"^{PRE_GEN.PATTERNS[name].pattern}$"
    return expected


def narrowed_choices(schema: dict[str, Any], expected: dict[str, Any], labels: Any) -> dict:
    """A branch may offer fewer of a prompt's choices (those the other answers allow), in
    the prompt's order, labelled as the prompt labels them, the first one the default.
    Which ones: test_the_form_accepts_exactly_what_the_hook_accepts."""
    offered, choices = schema.get("enum"), expected.get("enum")
    if not offered or not choices or offered == choices or not set(offered) < set(choices):
        return {}
    narrowed = {"enum": [c for c in choices if c in offered], "default": offered[0]}
    if isinstance(labels, dict):
        narrowed["enumNames"] = [labels[choice] for choice in narrowed["enum"]]
    return narrowed


def parameter_disagreements(cookiecutter_json: dict[str, Any], template: dict) -> list[str]:
    """How the form's fields differ from the prompts: names, titles, choices, defaults,
    patterns, and when each is asked."""
    prompts = {n: v for n, v in cookiecutter_json.items() if not n.startswith("_")}
    labels = cookiecutter_json.get("__prompts__", {})
    fields = form_fields(template)
    problems = [f"{n}: a form field that is no prompt" for n in fields.keys() - prompts.keys()]
    problems = [p for p in problems if p.split(":")[0] not in REGISTRY_ONLY]
    for name, default in prompts.items():
        found = fields.get(name, [])
        if not found:
            problems.append(f"{name}: a prompt the form does not ask")
        expected = expected_schema(name, default, labels)
        for schema, required, condition in found:
            where = (
                f"{name} (when {condition[0]} is {'|'.join(condition[1])})" if condition else name
            )
            narrowed = narrowed_choices(schema, expected, labels.get(name))
            problems += [
                f"{where}: {key} is {schema.get(key)!r}, the prompt has {value!r}"
                for key, value in (expected | narrowed).items()
                if schema.get(key) != value
            ]
            if "pattern" in schema and "pattern" not in expected:
                problems.append(f"{where}: a pattern the hook does not check")
            # Derived by cookiecutter from other answers, which the form cannot do.
            derived = isinstance(default, str) and "{{" in default
            if derived and (not required or "default" in schema):
                problems.append(f"{where}: derived in cookiecutter.json: require it")
        conditions = [condition for _, _, condition in found]
        if name in ASKED_ONLY_WHEN:
            controller, left_out_by = ASKED_ONLY_WHEN[name]
            asking = sorted(v for c in conditions if c for v in c[1] if c[0] == controller)
            expected_values = sorted(v for v in prompts.get(controller, []) if v != left_out_by)
            if None in conditions or asking != expected_values:
                problems.append(f"{name}: must be asked when {controller} is {expected_values}")
        elif found and conditions != [None]:
            problems.append(f"{name}: must be asked once, whatever the other answers")
    for page in template["spec"]["parameters"]:
        for controller, dependency in page.get("dependencies", {}).items():
            covered = sorted(
                v
                for branch in dependency["oneOf"]
                for v in branch["properties"][controller]["enum"]
            )
            if covered != sorted(prompts.get(controller, [])):
                problems.append(f"{controller}: its branches cover {covered}, not its choices")
    return problems


def fetch_step(template: dict[str, Any]) -> dict[str, Any]:
    [step] = [s for s in template["spec"]["steps"] if s["action"] == "fetch:cookiecutter"]
    return step


def value_disagreements(cookiecutter_json: dict[str, Any], template: dict) -> list[str]:
    """How the values the fetch step passes differ from what the skeleton needs: every
    prompt from its field, every private value as cookiecutter.json has it."""
    step = fetch_step(template)
    values = step["input"]["values"]
    problems = [] if step["input"]["url"] == SKELETON else [f"url is not {SKELETON}"]
    names = {n for n in cookiecutter_json if n != "__prompts__"}
    problems += [f"{n}: passed, but not in cookiecutter.json" for n in values.keys() - names]
    problems += [f"{n}: not passed" for n in names - values.keys()]
    for name in names & values.keys():
        default = cookiecutter_json[name]
        if name.startswith("_"):
            if values[name] != default:
                problems.append(f"{name}: passes {values[name]!r}, not {default!r}")
            continue
        match = PARAMETER.fullmatch(str(values[name]))
        if not match or match["name"] != name:
            problems.append(f"{name}: passes {values[name]!r}, not its field")
            continue
        first = default[0] if isinstance(default, list) else default
        if match["fallback"] is not None and match["fallback"] != first:
            problems.append(f"{name}: falls back to {match['fallback']!r}, not {first!r}")
        if name in ASKED_ONLY_WHEN and match["fallback"] is None:
            problems.append(f"{name}: may be left out of the form, so needs a fallback")
    return problems


def test_the_form_asks_what_cookiecutter_asks() -> None:
    assert parameter_disagreements(COOKIECUTTER_JSON, TEMPLATE_YAML) == []


def form_answers(combination: dict[str, str]) -> dict[str, str]:
    """The combination as the form holds it: without the fields it does not ask."""
    return {
        name: value
        for name, value in combination.items()
        if not any(
            name == asked and combination[other] == left_out for asked, other, left_out in IGNORED
        )
    }


def test_the_form_accepts_exactly_what_the_hook_accepts() -> None:
    # Each page is a JSON schema (draft 7, as the form library reads it).
    [choices_page] = [p for p in TEMPLATE_YAML["spec"]["parameters"] if "worker" in p["properties"]]
    form = Draft7Validator(choices_page)
    refused_by_form = [
        combination_id(c) for c in VALID_COMBINATIONS if not form.is_valid(form_answers(c))
    ]
    accepted_by_form = [
        combination_id(c) for c in INVALID_COMBINATIONS if form.is_valid(form_answers(c))
    ]
    assert (refused_by_form, accepted_by_form) == ([], [])
    assert INVALID_COMBINATIONS


def test_the_fetch_step_passes_every_answer() -> None:
    assert value_disagreements(COOKIECUTTER_JSON, TEMPLATE_YAML) == []


def test_the_entry_publishes_and_registers_what_it_generated() -> None:
    spec = TEMPLATE_YAML["spec"]
    assert TEMPLATE_YAML["apiVersion"] == "scaffolder.backstage.io/v1beta3"
    assert TEMPLATE_YAML["kind"] == "Template"
    actions = [step["action"] for step in spec["steps"]]
    assert actions == ["fetch:cookiecutter", "publish:github", "publish:gitlab", "catalog:register"]
    register = spec["steps"][-1]["input"]
    assert register["catalogInfoPath"] == "/catalog-info.yaml"
    assert all(s["id"] in register["repoContentsUrl"] for s in spec["steps"][1:3])


# The broker is asked only when a worker is chosen. The checks above must hold such a form
# to the same rules, and notice a form that asks neither.
def with_workers() -> tuple[dict[str, Any], dict[str, Any]]:
    """cookiecutter.json and template.yaml as they are: with a worker and its broker."""
    return copy.deepcopy(COOKIECUTTER_JSON), copy.deepcopy(TEMPLATE_YAML)


def without_workers() -> dict[str, Any]:
    """template.yaml as it would be had it not learned the worker and broker prompts."""
    template = copy.deepcopy(TEMPLATE_YAML)
    [page] = [p for p in template["spec"]["parameters"] if "worker" in p["properties"]]
    del page["properties"]["worker"]
    del page["dependencies"]["worker"]
    values = fetch_step(template)["input"]["values"]
    del values["worker"], values["broker"]
    return template


def test_a_broker_asked_only_with_a_worker_agrees() -> None:
    cookiecutter_json, template = with_workers()
    assert parameter_disagreements(cookiecutter_json, template) == []
    assert value_disagreements(cookiecutter_json, template) == []


WORKERS = sorted(w for w in CHOICES["worker"] if w != "none")
BROKER_RULE = f"broker: must be asked when worker is {WORKERS}"


def page_with_dependencies(template: dict[str, Any]) -> dict[str, Any]:
    [page] = [p for p in template["spec"]["parameters"] if "dependencies" in p]
    return page


def test_a_broker_asked_whatever_the_worker_disagrees() -> None:
    cookiecutter_json, template = with_workers()
    page = page_with_dependencies(template)
    branches = page.pop("dependencies")["worker"]["oneOf"]
    page["properties"]["broker"] = branches[1]["properties"]["broker"]
    assert BROKER_RULE in parameter_disagreements(cookiecutter_json, template)


def test_a_broker_asked_for_too_few_workers_disagrees() -> None:
    cookiecutter_json, template = with_workers()
    branches = page_with_dependencies(template)["dependencies"]["worker"]["oneOf"]
    branches[1]["properties"]["worker"]["enum"] = ["celery"]
    problems = parameter_disagreements(cookiecutter_json, template)
    assert BROKER_RULE in problems
    assert "worker: its branches cover ['celery', 'none', 'rq'], not its choices" in problems


def test_a_broker_passed_without_a_fallback_disagrees() -> None:
    cookiecutter_json, template = with_workers()
    fetch_step(template)["input"]["values"]["broker"] = "${{ parameters.broker }}"
    assert value_disagreements(cookiecutter_json, template) == [
        "broker: may be left out of the form, so needs a fallback"
    ]


def test_a_prompt_the_form_lacks_or_changes_disagrees() -> None:
    cookiecutter_json, _ = with_workers()
    problems = parameter_disagreements(cookiecutter_json, without_workers())
    assert "worker: a prompt the form does not ask" in problems
    assert "broker: a prompt the form does not ask" in problems
    changed = copy.deepcopy(TEMPLATE_YAML)
    [page] = [p for p in changed["spec"]["parameters"] if "project_slug" in p["properties"]]
    page["properties"]["project_slug"]["pattern"] = "^[a-z]+$"
    page["properties"]["version"]["default"] = "1.0.0"
    problems = parameter_disagreements(COOKIECUTTER_JSON, changed)
    assert any(p.startswith("project_slug: pattern is '^[a-z]+$'") for p in problems)
    assert any(p.startswith("version: default is '1.0.0'") for p in problems)
    assert sorted(value_disagreements(cookiecutter_json, without_workers())) == [
        "broker: not passed",
        "worker: not passed",
    ]


def form_data(**answers: str) -> dict[str, Any]:
    """What the form sends: its defaults, the fields it requires filled in as cookiecutter
    would derive them, and these answers."""
    derived = answers_for(**answers)
    data: dict[str, Any] = {"repoUrl": "github.com?owner=acme&repo=my-service"}
    for page in TEMPLATE_YAML["spec"]["parameters"]:
        for name, schema in page["properties"].items():
            if "default" in schema:
                data[name] = schema["default"]
            elif name in page.get("required", []) and name not in REGISTRY_ONLY:
                data[name] = derived[name]
    # A field left empty is left out of the form's data.
    return {name: value for name, value in {**data, **answers}.items() if value != ""}


def rendered_values(data: dict[str, Any]) -> dict[str, Any]:
    """The fetch step's values as the scaffolder renders them from the form's data: a value
    that is one expression keeps its type (strings here, booleans as booleans)."""
    values = {}
    for name, value in fetch_step(TEMPLATE_YAML)["input"]["values"].items():
        match = PARAMETER.fullmatch(value) if isinstance(value, str) else None
        if match:
            value = data.get(match["name"]) or match["fallback"]
        assert "${{" not in str(value), f"{name}: an expression this simulation cannot render"
        values[name] = value
    return values


def fetch_cookiecutter(values: dict[str, Any], workspace: Path) -> Path:
    """What fetch:cookiecutter does: the skeleton fetched as the contents of a template whose
    cookiecutter.json is the values alone, generated with no input and no hooks."""
    template = workspace / "template"
    url = fetch_step(TEMPLATE_YAML)["input"]["url"]
    shutil.copytree(TEMPLATE / url, template / "{{cookiecutter and 'contents'}}")
    (template / "cookiecutter.json").write_text(json.dumps(values))
    result = cookiecutter(
        str(template),
        no_input=True,
        output_dir=str(workspace / "result"),
        config_file=str(isolated_config(workspace / "result")),
    )
    return Path(result)


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_the_fetch_step_generates_the_project_cookiecutter_does(
    combination, ci: str, tmp_path: Path
) -> None:
    answers = {**combination, "ci": ci, "system": "payments", "lifecycle": "production"}
    generated = fetch_cookiecutter(rendered_values(form_data(**answers)), tmp_path / "backstage")
    assert generated.name == "contents"
    # A normal bake, hooks and all, but for the files the hook writes.
    expected = files_of(bake(tmp_path / "cookiecutter", **answers))
    for name in HOOK_WRITTEN:
        del expected[name]
    assert files_of(generated).keys() == expected.keys()
    assert [
        name for name, content in files_of(generated).items() if content != expected[name]
    ] == []


def catalog_entities(project: Path) -> dict[str, dict[str, Any]]:
    """The entities of a project's catalog-info.yaml, by kind."""
    documents = yaml.safe_load_all((project / "catalog-info.yaml").read_text())
    entities = {entity["kind"]: entity for entity in documents}
    assert sorted(entities) == ["API", "Component"]
    return entities


def test_catalog_info_names_owner_lifecycle_system_and_kubernetes_id(baked) -> None:
    answers = {"owner": "group:default/payments", "system": "billing", "lifecycle": "production"}
    project = baked({"framework": "flask", "database": "postgresql"}, **answers)
    component = catalog_entities(project)["Component"]
    assert component["metadata"]["name"] == project.name
    assert component["metadata"]["annotations"]["backstage.io/kubernetes-id"] == project.name
    assert component["spec"] == {"type": "service", **answers, "providesApis": [project.name]}


def test_catalog_info_without_a_system_names_none(baked) -> None:
    project = baked({"framework": "fastapi", "database": "sqlite"})
    for entity in catalog_entities(project).values():
        assert "system" not in entity["spec"]
        assert entity["spec"]["lifecycle"] == "experimental"
        assert entity["spec"]["owner"] == "platform-team"


@pytest.mark.parametrize("framework", CHOICES["framework"])
def test_the_api_entity_is_the_committed_contract(baked, framework: str) -> None:
    """The component provides an API of type openapi whose definition is the project's
    openapi.json, which the catalog reads from beside catalog-info.yaml."""
    answers = {"owner": "group:default/payments", "system": "billing", "lifecycle": "production"}
    project = baked({"framework": framework, "database": "none"}, **answers)
    entities = catalog_entities(project)
    api = entities["API"]
    assert entities["Component"]["spec"]["providesApis"] == [api["metadata"]["name"]]
    assert api["spec"] == {
        "type": "openapi",
        **answers,
        "definition": {"$text": "./openapi.json"},
    }
    definition = project / api["spec"]["definition"]["$text"]
    assert json.loads(definition.read_text())["openapi"].startswith("3.1")
