"""Updates: a project created with cruft learns that the template moved on (`cruft check`),
takes the change with `cruft update` at its prompt, as the generated README gives it, keeps
its own edits, resolves a conflict, and ends up as a fresh bake of the new template would be.

The template is a local git repository. The README's cruft runs through uvx, which builds
cruft's environment from PyPI the first time and from uv's cache after that: a run without
the registry and without that cache fails, saying so."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from harness import (
    COOKIECUTTER_JSON,
    HOOK_WRITTEN,
    TEMPLATE,
    UV,
    files_of,
    requirements_pin,
)
from terminal import run_in_terminal

ANSWERS = {"framework": "flask", "database": "postgresql", "ci": "gitlab"}
CRUFT = [sys.executable, "-m", "cruft"]
ENVIRONMENT = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    # uvx builds cruft's environment with the interpreter running these tests; never a
    # downloaded one.
    "UV_PYTHON": sys.executable,
    "UV_PYTHON_DOWNLOADS": "never",
}
# The command both READMEs run cruft with, defined once in each as a shell alias.
CRUFT_ALIAS = re.compile(r"^alias cruft='(uvx [^']+)'$", re.MULTILINE)


def sh(*command: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=ENVIRONMENT,
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
    ignored = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".*_cache", ".cache")
    shutil.copytree(TEMPLATE, directory, ignore=ignored)
    sh("git", "init", "--quiet", "--initial-branch", "main", cwd=directory)
    return directory


def cruft_create(template: Path, output: Path) -> tuple[Path, str]:
    """The project cruft creates, and what it printed."""
    created = sh(
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
    return project, created.stdout


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


def banner(project: Path) -> str:
    """The post-generation hook's next steps."""
    return f"Generated {project.name}. Next steps:"


def readme_cruft(readme: Path) -> list[str]:
    """The README's cruft command (`uvx ...`), as uv from requirements.txt runs it."""
    alias = CRUFT_ALIAS.search(readme.read_text())
    assert alias, f"{readme} defines no `alias cruft='uvx ...'`"
    uvx, *arguments = shlex.split(alias[1])
    assert uvx == "uvx"
    return [*UV, "tool", "run", *arguments]


def run_readme_cruft(command: list[str], cwd: Path) -> str:
    """What the README's cruft command prints, its environment built from uv's cache, or
    where that lacks it (the first run), from the registry."""
    for environment in ({**ENVIRONMENT, "UV_OFFLINE": "1"}, ENVIRONMENT):
        result = subprocess.run(
            command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
        )
        if result.returncode == 0:
            return result.stdout
    raise AssertionError(
        f"{' '.join(command)} failed (uvx builds cruft's environment from the registry, "
        f"where uv's cache lacks it):\n{result.stdout}{result.stderr}"
    )


def answer_at_the_prompt(
    command: list[str], cwd: Path, prompt: str, answer: str
) -> tuple[int, str]:
    """Run command on a terminal of its own and type answer when prompt shows, as a person
    does: its exit status and what the terminal showed (as text, without colours)."""
    answered = False

    def respond(screen: str) -> str | None:
        nonlocal answered
        if answered or prompt not in screen:
            return None
        answered = True
        return answer

    # Offline: run_readme_cruft has built the environment.
    environment = {**ENVIRONMENT, "UV_OFFLINE": "1"}
    return run_in_terminal(command, respond, cwd=cwd, environment=environment, timeout=300)


def test_cruft_keeps_a_project_current_with_the_template(tmp_path: Path) -> None:
    # One story, told once: it takes a template repository, three bakes and an update, run
    # as the generated README gives the commands, the update answered at its prompt.
    template = template_repository(tmp_path / "template")
    commit_all(template, "The release the project is made from")
    (tmp_path / "old").mkdir()
    project, created = cruft_create(template, tmp_path / "old")
    # A new project is told what to do next.
    assert banner(project) in created
    sh("git", "init", "--quiet", cwd=project)
    commit_all(project, "Generated")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Our own notes\n\nKept across updates.\n")
    # The template adds lines at the end of .gitignore too: a conflict.
    gitignore = project / ".gitignore"
    gitignore.write_text(gitignore.read_text() + "\n# Our own\n.tox/\n")
    commit_all(project, "Our own edits")
    assert sh(*CRUFT, "check", cwd=project, check=False).returncode == 0

    change_the_template(template)
    second = commit_all(template, "A new version")
    # `cruft check` reports the project out of date.
    assert sh(*CRUFT, "check", cwd=project, check=False).returncode != 0

    # Both READMEs run the same cruft, pinned as requirements.txt pins it.
    cruft = readme_cruft(readme)
    alias = f"alias cruft='uvx --with typer=={requirements_pin('typer')} "
    alias += f"cruft=={requirements_pin('cruft')}'"
    assert CRUFT_ALIAS.search(readme.read_text())[0] == alias
    assert CRUFT_ALIAS.search((TEMPLATE / "README.md").read_text())[0] == alias
    guide = " ".join(readme.read_text().split())

    # `cruft diff` shows the project's own edits to the template's files, as changes from
    # the project back to the template at the recorded commit; not the template's new
    # changes. It bakes that template to compare, quietly: the output is a patch.
    assert "\ncruft diff " in readme.read_text()
    diff = run_readme_cruft([*cruft, "diff"], project)
    assert "Next steps" not in diff
    assert diff.startswith("diff --git ")
    assert "\n-## Our own notes\n" in diff
    assert "\n-.tox/\n" in diff
    assert ".vscode/" not in diff
    assert "CONTRIBUTING" not in diff
    assert "`cruft diff` shows your own edits" in guide

    # `cruft update`, as a person runs it: the prompt, answered.
    assert "\ncruft update " in readme.read_text()
    status, shown = answer_at_the_prompt(
        [*cruft, "update"], project, prompt="Apply diff and update? [y]:", answer="y"
    )
    assert status == 0, shown
    assert "Traceback" not in shown, shown
    assert "Error" not in shown, shown
    # The banner is for a new project; cruft's own bakes to compare print none.
    assert "Next steps" not in shown
    # The change that conflicts: git merged it three ways, left markers, and cruft says
    # so in one line of git's, then reports success.
    assert "Applied patch to '.gitignore' with conflicts." in shown
    assert "Good work! Project's cruft has been updated" in shown
    merged = gitignore.read_text()
    ours, theirs = merged.split("<<<<<<< ours\n")[1].split("=======\n")
    assert ".tox/" in ours
    assert ".vscode/" in theirs
    assert theirs.endswith(">>>>>>> theirs\n")
    status_lines = sh("git", "status", "--porcelain", cwd=project).stdout.splitlines()
    assert "UU .gitignore" in status_lines
    assert not list(project.rglob("*.rej"))
    assert "<<<<<<< ours" in guide
    assert "with conflicts" in guide
    # Every other change is applied, the project's own edit kept, and the new commit
    # recorded: `cruft check` passes while the conflict is still in the file.
    assert (project / "CONTRIBUTING.md").read_text().startswith("# Contributing to My Service")
    assert "Kept across updates." in readme.read_text()
    recorded = answers_file(project)
    assert recorded["commit"] == second
    assert sh(*CRUFT, "check", cwd=project, check=False).returncode == 0

    # Resolved as the README says: the lines wanted, `git add`, commit.
    resolved = re.sub(r"^(<<<<<<< ours|=======|>>>>>>> theirs)\n", "", merged, flags=re.M)
    gitignore.write_text(resolved)
    sh("git", "add", ".gitignore", cwd=project)
    sh("git", "commit", "--all", "--quiet", "--message", "Template 99.0.0", cwd=project)

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
    # README.md holds the project's own edit after the template's text, and .gitignore
    # both sides of the conflict.
    (tmp_path / "new").mkdir()
    fresh, _ = cruft_create(template, tmp_path / "new")
    ours_files, theirs_files = files_of(project), files_of(fresh)
    # The answers files differ in the checkout alone: `cruft update` records none (the
    # default branch), `cruft create` the one it was given.
    assert recorded["checkout"] is None
    assert recorded | {"checkout": "main"} == answers_file(fresh)
    edited = {"README.md", ".gitignore", ".cruft.json"}
    owned = {
        n for n in theirs_files if n not in HOOK_WRITTEN | edited and not n.startswith(".git/")
    }
    assert owned <= ours_files.keys()
    assert [name for name in sorted(owned) if ours_files[name] != theirs_files[name]] == []
    assert readme.read_text().startswith((fresh / "README.md").read_text())
    assert set((fresh / ".gitignore").read_text().splitlines()) <= set(resolved.splitlines())


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
    baked = sh(
        sys.executable,
        "-m",
        "cookiecutter",
        *pinned,
        f"git+file://{registry}",
        "-o",
        "a",
        cwd=tmp_path,
    )
    created = sh(*CRUFT, "create", *pinned, str(registry), "--output-dir", "b", cwd=tmp_path)
    for project, shown in (
        (tmp_path / "a" / "my-service", baked),
        (tmp_path / "b" / "my-service", created),
    ):
        assert (project / "catalog-info.yaml").is_file()
        assert not (project / "CONTRIBUTING.md").exists(), "not the pinned release"
        # Both print the next steps, once.
        assert shown.stdout.count(banner(project)) == 1
    recorded = answers_file(tmp_path / "b" / "my-service")
    assert recorded["directory"] == "python-web-service"
    assert recorded["checkout"] == "v0.3.0"
    version = COOKIECUTTER_JSON["_template_version"]
    assert recorded["context"]["cookiecutter"]["_template_version"] == version


def test_cruft_create_holds_its_config_file_to_the_choices(tmp_path: Path) -> None:
    # cruft reads a config's default_context as cookiecutter does, with the same silent
    # fallback to the defaults on a value that is not a choice: the hook stops the bake.
    template = template_repository(tmp_path / "template")
    commit_all(template, "The release the project is made from")
    config = tmp_path / "team.yaml"
    config.write_text("default_context:\n  framework: Django\n  database: postgresql\n")
    (tmp_path / "out").mkdir()
    result = sh(
        *CRUFT,
        "create",
        str(template),
        "--no-input",
        "--config-file",
        str(config),
        "--output-dir",
        str(tmp_path / "out"),
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert (
        f"framework = 'Django': in default_context of {config}, must be exactly one of "
        "fastapi, flask, django; cookiecutter ignored it and the defaults after it (database)"
    ) in result.stderr
    assert list((tmp_path / "out").iterdir()) == []
