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


def test_cruft_keeps_a_project_current_with_the_template(tmp_path: Path) -> None:
    # One story, told once: it takes a template repository, three bakes and an update.
    template = template_repository(tmp_path / "template")
    commit_all(template, "The release the project is made from")
    (tmp_path / "old").mkdir()
    project = cruft_create(template, tmp_path / "old")
    sh("git", "init", "--quiet", cwd=project)
    commit_all(project, "Generated")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Our own notes\n\nKept across updates.\n")
    commit_all(project, "Our own edit")
    assert sh(*CRUFT, "check", cwd=project, check=False).returncode == 0

    change_the_template(template)
    second = commit_all(template, "A new version")
    # `cruft check` reports the project out of date.
    assert sh(*CRUFT, "check", cwd=project, check=False).returncode != 0

    sh(*CRUFT, "update", "--skip-apply-ask", "--checkout", "main", cwd=project)
    # The change is applied cleanly and the project's own edit is kept.
    assert sh(*CRUFT, "check", cwd=project, check=False).returncode == 0
    assert not list(project.rglob("*.rej")), "a change did not apply cleanly"
    assert (project / "CONTRIBUTING.md").read_text().startswith("# Contributing to My Service")
    assert ".vscode/" in (project / ".gitignore").read_text()
    assert "Kept across updates." in readme.read_text()
    recorded = answers_file(project)
    assert recorded["commit"] == second

    # The answers file records every answer, the new version, and no secret.
    answers = recorded["context"]["cookiecutter"]
    assert {name for name in COOKIECUTTER_JSON if name != "__prompts__"} <= answers.keys()
    assert {name: answers[name] for name in ANSWERS} == ANSWERS
    assert answers["_template_version"] == "99.0.0"
    secrets = [
        line.partition("=")[2]
        for line in (project / ".env").read_text().splitlines()
        if line.startswith("SECRET_KEY=")
    ]
    assert secrets
    assert all(secret not in (project / ".cruft.json").read_text() for secret in secrets)

    # A bake at the new commit equals the updated project in the files the template owns;
    # README.md holds the project's own edit after the template's text.
    (tmp_path / "new").mkdir()
    fresh = cruft_create(template, tmp_path / "new")
    ours, theirs = files_of(project), files_of(fresh)
    owned = {
        n for n in theirs if n not in HOOK_WRITTEN | {"README.md"} and not n.startswith(".git/")
    }
    assert owned <= ours.keys()
    assert [name for name in sorted(owned) if ours[name] != theirs[name]] == []
    assert readme.read_text().startswith((fresh / "README.md").read_text())


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
