"""Secrets: in every baked combination (hooks run, so the secret files exist), what git would
track holds no secret. The secrets live in the git-ignored files post_gen writes, and only
there; nothing tracked looks like a secret either."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness import CHOICES, HOOK_WRITTEN, POST_GEN, VALID_COMBINATIONS, Baker, combination_id

# Names that hold a secret, assigned a literal value in any of the project's file formats
# (KEY=value, KEY: value, "key": "value", key = "value").
SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)
    \b(?P<name>[A-Z0-9_]*(?:SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY)[A-Z0-9_]*)
    ["']?\s*[:=]\s*["']?
    (?P<value>[^\s"',;()}\]]+)
    """
)
# Credentials inside a URL: scheme://user:password@host
URL_PASSWORD = re.compile(r"://[^/\s:@]+:(?P<value>[^@\s/]+)@")
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
# Values that are documented stand-ins, not secrets: the placeholder post_gen replaces, the
# local development databases' well-known passwords, and references to a secret kept
# elsewhere (CI secrets, environment variables).
PLACEHOLDERS = {POST_GEN.SECRET_PLACEHOLDER, "postgres", "app", "password", "guest"}
REFERENCE = re.compile(r"^(?:\$|\{\{|<|\*)")


def looks_random(value: str) -> bool:
    """A value long and mixed enough to be a generated secret rather than a word."""
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return len(value) >= 16 and classes >= 2 and not REFERENCE.match(value)


def suspicious(text: str) -> list[str]:
    """What in a tracked file's text looks like a secret."""
    found = [m.group(0) for m in PRIVATE_KEY.finditer(text)]
    for match in [*SECRET_ASSIGNMENT.finditer(text), *URL_PASSWORD.finditer(text)]:
        value = match.group("value")
        if value not in PLACEHOLDERS and looks_random(value):
            found.append(match.group(0))
    return found


def written_secrets(project: Path) -> dict[str, str]:
    """Every secret post_gen wrote: the values that replaced the examples' placeholders."""
    values = {}
    for example, target in POST_GEN.SECRET_FILES:
        placeholders = {
            line.partition("=")[0]
            for line in (project / example).read_text().splitlines()
            if line.partition("=")[2].strip() == POST_GEN.SECRET_PLACEHOLDER
        }
        for line in (project / target).read_text().splitlines():
            name, _, value = line.partition("=")
            if name in placeholders:
                values[f"{target}:{name}"] = value.strip()
    return values


def tracked_files(project: Path, git_dir: Path) -> list[str]:
    """What `git add -A` in a fresh repository would track, without writing to the project."""
    git = ["git", f"--git-dir={git_dir}", f"--work-tree={project}"]
    subprocess.run([*git, "init", "--quiet"], check=True, capture_output=True)
    subprocess.run([*git, "add", "--all"], check=True, capture_output=True, cwd=project)
    listed = subprocess.run(
        [*git, "ls-files", "-z"], check=True, capture_output=True, text=True, cwd=project
    )
    return [name for name in listed.stdout.split("\0") if name]


CASES = [
    pytest.param({**combination, "ci": ci}, id=f"{combination_id(combination)}-{ci}")
    for combination in VALID_COMBINATIONS
    for ci in CHOICES["ci"]
]


@pytest.mark.parametrize("combination", CASES)
def test_no_tracked_file_holds_a_secret(
    baked: Baker, combination: dict[str, str], tmp_path: Path
) -> None:
    project = baked(combination)
    secrets = written_secrets(project)
    assert secrets, "post_gen wrote no secret: nothing to look for"
    assert all(len(value) >= 32 for value in secrets.values()), secrets.keys()

    tracked = tracked_files(project, tmp_path / "git")
    assert not HOOK_WRITTEN & set(tracked), "a secret file would be tracked"
    leaks = {}
    for name in tracked:
        text = (project / name).read_text(errors="replace")
        found = [key for key, value in secrets.items() if value in text] + suspicious(text)
        if found:
            leaks[name] = found
    assert not leaks


@pytest.mark.parametrize(
    ("text", "leaks"),
    [
        ("SECRET_KEY=change-me", False),
        ("POSTGRES_PASSWORD: postgres", False),
        ("DATABASE_URL=postgresql://postgres:postgres@db:5432/app", False),
        ("token: ${{ secrets.REGISTRY_TOKEN }}", False),
        ("SECRET_KEY=J8x2kQp0vZr7LmN4tY6wB1cD", True),
        ('"api_token": "ghp_a1B2c3D4e5F6g7H8i9J0kLmN"', True),
        ("DATABASE_URL=postgresql://app:Zq8vR2mK9xL4pT7wB3nY@db/app", True),
        ('{"SECRET_KEY": secrets.token_urlsafe(48)}', False),
        ("-----BEGIN RSA PRIVATE KEY-----", True),
    ],
)
def test_the_scan_tells_secrets_from_placeholders(text: str, leaks: bool) -> None:
    assert bool(suspicious(text)) is leaks
