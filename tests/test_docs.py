"""The template's own documents: each section can be linked to, every path they name is in
the repository, and the generated README reads as prose in every combination."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from artifacts import combinations_of, compose_of
from harness import TEMPLATE, VALID_COMBINATIONS, combination_id

README = TEMPLATE / "README.md"
SKELETON = TEMPLATE / "{{cookiecutter.project_slug}}"
# A path in the repository (or in a generated project) as documents and comments name it.
NAMED_PATH = re.compile(r"(?<![\w./{-])((?:tests|bench|hooks)/[\w./-]*[\w/])")


@pytest.mark.parametrize("document", ["README.md", "CONTRIBUTING.md"])
def test_headings_are_unique(document: str) -> None:
    # A heading is a link target (#service); two of the same title cannot both be linked.
    headings = re.findall(r"^#+ (.+)$", (TEMPLATE / document).read_text(), re.MULTILINE)
    assert len(headings) == len(set(headings)), sorted(h for h in headings if headings.count(h) > 1)


def in_skeleton(path: str) -> bool:
    """A generated project's file: its name may be a Jinja expression that renders to it."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return (SKELETON / path).exists() or any((SKELETON / parent).glob(f"*'{name}'*"))


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [TEMPLATE / name for name in listed]


@pytest.mark.parametrize(
    "document",
    [
        "README.md",
        "CONTRIBUTING.md",
        ".gitignore",
        "requirements.txt",
        "pyproject.toml",
        "tests",
        "bench",
        "hooks",
    ],
)
def test_every_path_a_document_names_is_in_the_repository(document: str) -> None:
    # Prose and comments point at tests/..., bench/... or hooks/... of the template (or of
    # a generated project): each such path exists, and none points outside the repository,
    # which a clone does not have.
    sources = [p for p in tracked_files() if p.is_file() and p.is_relative_to(TEMPLATE / document)]
    stale = sorted(
        (source.name, path)
        for source in sources
        for text in [source.read_text()]
        for path in NAMED_PATH.findall(text) + re.findall(r"\.\./shared\S*", text)
        if not path.startswith("bench/results/")
        and not (TEMPLATE / path).exists()
        and not in_skeleton(path)
    )
    assert not stale


# The README's prose changes with the framework and the worker; one database each.
README_VARIANTS = list(
    {
        (c["framework"], c["worker"]): c for c in VALID_COMBINATIONS if c["database"] != "none"
    }.values()
)


@pytest.mark.parametrize("combination", README_VARIANTS, ids=combination_id)
def test_generated_readme_has_no_nested_parentheses(baked, combination: dict[str, str]) -> None:
    # A fact spliced into a sentence reads as prose: "(Celery beat)", never "(A loop (...))".
    text = (baked(combination) / "README.md").read_text()
    prose = re.sub(r"```.*?```|`[^`]*`|\]\([^)]*\)", "", text, flags=re.DOTALL)
    nested = re.findall(r"^.*\([^()]*\(.*$", prose, re.MULTILINE)
    assert not nested


def test_readme_draws_the_architecture_the_artifacts_deploy(variants) -> None:
    for variant in combinations_of(variants):
        readme = (variant.project / "README.md").read_text()
        (diagram,) = re.findall(r"```mermaid\n(.*?)```", readme, re.DOTALL)
        assert diagram.startswith("flowchart ")
        assert diagram.count("[") == diagram.count("]")
        assert diagram.count("(") == diagram.count(")")
        assert diagram.count('"') % 2 == 0
        for service in compose_of(variant.project)["services"]:
            assert f"compose: service {service}" in diagram, service
        for volume in compose_of(variant.project).get("volumes", {}):
            assert f"volume {volume}" in diagram or volume == "database", volume
        for kind in ("Deployment", "Service", "Ingress", "PersistentVolumeClaim"):
            for document in variant.kind("overlays/prod", kind):
                assert f"{kind} {document['metadata']['name']}" in diagram, kind
