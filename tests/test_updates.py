"""Updates: a project created with cruft learns that the template moved on (`cruft check`),
takes the change with `cruft update` while keeping its own edits, and ends up as a fresh
bake of the new template would be. Offline: the template is a local git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import COOKIECUTTER_JSON, HOOK_WRITTEN, TEMPLATE, files_of

ANSWERS = {"framework": "flask", "database": "postgresql", "ci": "gitlab"}
CRUFT = [sys.executable, "-m", "cruft"]
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def sh(*command: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY, "GIT_CONFIG_GLOBAL": os.devnull},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
    return result


def commit_all(repository: Path, message: str) -> str:
    sh("git", "add", "--all", cwd=repository)
    sh("git", "commit", "--quiet", "--message", message, cwd=repository)
    return sh("git", "rev-parse", "HEAD", cwd=repository).stdout.strip()


def template_repository(directory: Path) -> Path:
    """A git repository of a copy of this template, as a registry would hold it."""
    ignored = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".*_cache")
    shutil.copytree(TEMPLATE, directory, ignore=ignored)
    sh("git", "init", "--quiet", "--initial-branch", "main", cwd=directory)
    return directory


def cruft_create(template: Path, output: Path) -> Path:
    sh(
        *CRUFT,
        "create",
        str(template),
        "--checkout",
        "main",
        "--no-input",
        "--output-dir",
        str(output),
        "--extra-context",
        json.dumps(ANSWERS),
        cwd=output.parent,
    )
    [project] = output.iterdir()
    return project


def change_the_template(template: Path) -> None:
    """A new version: a changed file, an added file, and the version recorded."""
    skeleton = template / "{{cookiecutter.project_slug}}"
    gitignore = skeleton / ".gitignore"
    gitignore.write_text(gitignore.read_text() + "\n# Editors\n.idea/\n.vscode/\n")
    (skeleton / "CONTRIBUTING.md").write_text(
        "# Contributing to {{ cookiecutter.project_name }}\n\nRun `uv run pytest` first.\n"
    )
    cookiecutter_json = template / "cookiecutter.json"
    cookiecutter_json.write_text(
        cookiecutter_json.read_text().replace(
            f'"_template_version": "{COOKIECUTTER_JSON["_template_version"]}"',
            '"_template_version": "99.0.0"',
        )
    )
    assert '"99.0.0"' in cookiecutter_json.read_text()


def answers_file(project: Path) -> dict:
    return json.loads((project / ".cruft.json").read_text())


@pytest.fixture(scope="module")
def updated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A project made at the template's first commit, with edits of its own, updated to
    the second; and a project made at the second."""
    root = tmp_path_factory.mktemp("updates")
    template = template_repository(root / "template")
    first = commit_all(template, "0.3.0")
    (root / "old").mkdir()
    project = cruft_create(template, root / "old")
    sh("git", "init", "--quiet", cwd=project)
    commit_all(project, "Generated")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Our own notes\n\nKept across updates.\n")
    commit_all(project, "Our own edit")
    change_the_template(template)
    second = commit_all(template, "A new version")
    check_before = sh(*CRUFT, "check", cwd=project, check=False)
    sh(
        *CRUFT,
        "update",
        "--skip-apply-ask",
        "--checkout",
        "main",
        "--refresh-private-variables",
        cwd=project,
    )
    check_after = sh(*CRUFT, "check", cwd=project, check=False)
    (root / "new").mkdir()
    fresh = cruft_create(template, root / "new")
    return {
        "project": project,
        "fresh": fresh,
        "first": first,
        "second": second,
        "check_before": str(check_before.returncode),
        "check_after": str(check_after.returncode),
    }


def test_cruft_check_reports_a_project_out_of_date_then_current(updated) -> None:
    assert updated["check_before"] != "0"
    assert updated["check_after"] == "0"


def test_cruft_update_applies_the_change_and_keeps_the_project_edits(updated) -> None:
    project = Path(updated["project"])
    assert (project / "CONTRIBUTING.md").read_text().startswith("# Contributing to My Service")
    assert ".vscode/" in (project / ".gitignore").read_text()
    assert "Kept across updates." in (project / "README.md").read_text()
    assert not list(project.rglob("*.rej")), "a change did not apply cleanly"
    assert answers_file(project)["commit"] == updated["second"]


def test_an_updated_project_equals_a_fresh_bake_in_the_files_the_template_owns(updated) -> None:
    project, fresh = Path(updated["project"]), Path(updated["fresh"])
    ours = files_of(project)
    theirs = files_of(fresh)
    owned = {
        name
        for name in theirs
        if name not in HOOK_WRITTEN and not name.startswith(".git/") and name != "README.md"
    }
    assert owned <= ours.keys()
    assert [name for name in sorted(owned) if ours[name] != theirs[name]] == []
    # README.md holds the project's own edit besides the template's text.
    assert (project / "README.md").read_text().startswith((fresh / "README.md").read_text())


def test_the_answers_file_records_every_answer_and_the_version_and_no_secret(updated) -> None:
    project = Path(updated["project"])
    recorded = answers_file(project)["context"]["cookiecutter"]
    prompts = {name for name in COOKIECUTTER_JSON if name != "__prompts__"}
    assert prompts <= recorded.keys()
    assert {name: recorded[name] for name in ANSWERS} == ANSWERS
    assert recorded["_template_version"] == "99.0.0"
    text = (project / ".cruft.json").read_text()
    secrets = [
        line.partition("=")[2]
        for line in (project / ".env").read_text().splitlines()
        if line.startswith("SECRET_KEY=")
    ]
    assert secrets
    assert all(secret not in text for secret in secrets)


def test_a_registry_of_templates_pins_a_version_and_names_a_directory(tmp_path: Path) -> None:
    # The README's registry section: this template in a directory of a repository that holds
    # several, a release tagged, then the template moves on.
    registry = tmp_path / "templates"
    registry.mkdir()
    template = template_repository(registry / "python-web-service")
    shutil.rmtree(template / ".git")
    sh("git", "init", "--quiet", "--initial-branch", "main", cwd=registry)
    commit_all(registry, "Release")
    sh("git", "tag", "v0.3.0", cwd=registry)
    change_the_template(template)
    commit_all(registry, "After the release")
    pinned = ["--directory", "python-web-service", "--checkout", "v0.3.0", "--no-input"]
    sh(
        sys.executable,
        "-m",
        "cookiecutter",
        *pinned,
        f"git+file://{registry}",
        "-o",
        "a",
        cwd=tmp_path,
    )
    sh(*CRUFT, "create", *pinned, str(registry), "--output-dir", "b", cwd=tmp_path)
    for project in (tmp_path / "a" / "my-service", tmp_path / "b" / "my-service"):
        assert (project / "catalog-info.yaml").is_file()
        assert not (project / "CONTRIBUTING.md").exists(), "not the pinned release"
    recorded = answers_file(tmp_path / "b" / "my-service")
    assert recorded["directory"] == "python-web-service"
    assert recorded["checkout"] == "v0.3.0"
    version = COOKIECUTTER_JSON["_template_version"]
    assert recorded["context"]["cookiecutter"]["_template_version"] == version
