"""Wire the generated project; choose no files.

Which files exist is decided by rendering (a file whose name renders empty is skipped), so
the project is complete without this hook. The hook only writes what must never be
tracked, tidies up, and says what to do next:

- ``.env`` from ``.env.example``, and the development cluster's secrets file from its
  example, each placeholder secret replaced by a fresh random one;
- directories left empty by the file choice are removed;
- the next steps are printed, for a new project only: not when cruft bakes a copy to
  compare the project with (``cruft diff``, ``cruft update``).

No network, no installs, no git. Safe to run twice: an existing ``.env`` is kept.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The value .env.example gives every secret; the generated settings refuse it outside
# development, so a secret can only be used once it has been replaced.
SECRET_PLACEHOLDER = "change-me"

ENV_EXAMPLE = ".env.example"
ENV_FILE = ".env"
# Git-ignored files written from their tracked examples: (example, file).
SECRET_FILES = (
    (ENV_EXAMPLE, ENV_FILE),
    ("deploy/k8s/overlays/dev/secrets.env.example", "deploy/k8s/overlays/dev/secrets.env"),
)


def fill_secrets(example: str) -> str:
    """The example environment with each placeholder secret given a fresh value."""
    lines = []
    for line in example.splitlines(keepends=True):
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#") and value.strip() == SECRET_PLACEHOLDER:
            # 48 random bytes, 64 characters: long enough for every framework's own check
            # (Django's deployment check wants 50).
            line = f"{name}={secrets.token_urlsafe(48)}\n"
        lines.append(line)
    return "".join(lines)


def write_secret_file(project: Path, example: str, target: str) -> bool:
    """Write a secrets file once; a second run keeps the secrets already in use."""
    secret_file = project / target
    if secret_file.exists():
        return False
    secret_file.write_text(fill_secrets((project / example).read_text()))
    secret_file.chmod(0o600)
    return True


def prune_empty_directories(project: Path) -> None:
    for root, _dirs, _files in os.walk(project, topdown=False):
        directory = Path(root)
        if directory != project and not any(directory.iterdir()):
            directory.rmdir()


# The name Python's tempfile gives a temporary directory: "tmp" and 8 random characters.
TEMPORARY_DIRECTORY_NAME = re.compile(r"tmp[a-z0-9_]{8}")


def is_a_copy_to_compare(project: Path, answers: Mapping[str, Any]) -> bool:
    """Whether cruft bakes this copy only to compare the project with (`cruft diff`, and
    twice in `cruft update`): no one reads next steps there, and in `cruft diff` they would
    corrupt the patch it prints.

    cruft sets no flag, but shows itself in two ways: it calls cookiecutter's generate_files
    itself, so the answers lack the `_output_dir` that cookiecutter's own entry point
    records, and for a comparison (not for `cruft create`) it bakes into a fresh
    tempfile.TemporaryDirectory, where no one creates a project to keep.
    """
    if "_output_dir" in answers:
        return False
    parent = project.resolve().parent
    return (
        parent.parent == Path(tempfile.gettempdir()).resolve()
        and TEMPORARY_DIRECTORY_NAME.fullmatch(parent.name) is not None
    )


def next_steps(answers: Mapping[str, Any]) -> str:
    slug = answers["project_slug"]
    steps = [f"cd {slug}"]
    # Every database but the embedded one (and none) runs on a server of its own.
    if answers["database"] not in ("sqlite", "none"):
        steps.append("# point DATABASE_URL in .env at your database server (see README.md)")
    if answers.get("worker", "none") != "none":
        steps.append("# point BROKER_URL in .env at your broker (see README.md)")
    steps.append(f"uv run {slug} dev      # migrate, then serve on http://127.0.0.1:8000")
    if answers.get("worker", "none") != "none":
        steps.append(f"uv run {slug} worker   # in another terminal: the background worker")
    steps.append("uv run pytest")
    body = "\n".join(f"    {step}" for step in steps)
    return f"\nGenerated {slug}. Next steps:\n\n{body}\n"


def main(answers: Mapping[str, Any]) -> int:
    project = Path.cwd()
    for example, target in SECRET_FILES:
        write_secret_file(project, example, target)
    prune_empty_directories(project)
    if not is_a_copy_to_compare(project, answers):
        print(next_steps(answers))
    return 0


if __name__ == "__main__":
    ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")
    sys.exit(main(ANSWERS))
