"""The template's own source, read as a maintainer reads it: which files and which Jinja
branches depend on a choice. The source tests use it, and so can a maintainer adding a value:

    python tests/template_source.py worker      # every place that branches on the worker

prints each file named for a worker and each `{% if %}` that tests one, file:line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import SKELETON

# The options whose values the facts table describes, and their "nothing chosen" value.
OPTIONS = ("framework", "database", "worker", "broker", "ci")
NOTHING = "none"

TAG = re.compile(r"\{%-?\s*(if|elif|else|endif)\b(.*?)-?%\}", re.S)
# One test of one option against literal values: `cookiecutter.worker == "rq"`,
# `cookiecutter.framework in ("flask", "django")`.
VALUE_TEST = re.compile(
    r"""^(not\s+)?cookiecutter\.(\w+)\s*(==|!=|in|not\s+in)\s*"""
    r"""(?P<values>"[^"]*"|'[^']*'|\((?:\s*("[^"]*"|'[^']*')\s*,?)+\))$"""
)


@dataclass
class Branch:
    """An if/elif/else chain: where it starts and the condition of each of its arms."""

    path: Path
    line: int
    conditions: list[str]
    has_else: bool
    else_line: int = 0

    def where(self, line: int | None = None) -> str:
        return f"{self.path.relative_to(SKELETON.parent)}:{line or self.line}"


def template_files() -> list[Path]:
    return sorted(p for p in SKELETON.rglob("*") if p.is_file())


def branches(path: Path) -> Iterator[Branch]:
    text = path.read_text()
    stack: list[Branch] = []
    for match in TAG.finditer(text):
        kind, condition = match.group(1), " ".join(match.group(2).split())
        line = text.count("\n", 0, match.start()) + 1
        if kind == "if":
            stack.append(Branch(path, line, [condition], has_else=False))
        elif kind == "elif":
            stack[-1].conditions.append(condition)
        elif kind == "else":
            stack[-1].has_else = True
            stack[-1].else_line = line
        else:
            yield stack.pop()


def tested_option(condition: str) -> tuple[str, set[str]] | None:
    """The option a condition tests and the values it names, if it is one such test."""
    match = VALUE_TEST.match(condition)
    if not match or match.group(2) not in OPTIONS:
        return None
    return match.group(2), set(re.findall(r"""["']([^"']*)["']""", match.group("values")))


def fallbacks(branch: Branch) -> str | None:
    """The option whose remaining values an `else` stands for: a chain that tests one option
    against values (other than none) and ends in `else` gives a new value the text of the
    values it did not name."""
    if not branch.has_else:
        return None
    tests = [tested_option(condition) for condition in branch.conditions]
    if not all(tests) or any(re.search(r"!=|\bnot\b", c) for c in branch.conditions):
        return None  # not only tests that name values: the else is what they exclude
    options = {option for option, _values in tests}  # type: ignore[misc]
    named = set().union(*(values for _option, values in tests))  # type: ignore[misc]
    if len(options) == 1 and named != {NOTHING}:
        return options.pop()
    return None


def places(option: str) -> list[str]:
    """Every file named for the option and every branch that tests it."""
    found = []
    for path in template_files():
        relative = path.relative_to(SKELETON.parent)
        if f"cookiecutter.{option}" in str(relative):
            found.append(f"{relative}: named for it")
        for branch in branches(path):
            if any(f"cookiecutter.{option}" in condition for condition in branch.conditions):
                found.append(f"{branch.where()}: {' / '.join(branch.conditions)}")
    return found


if __name__ == "__main__":
    for place in places(sys.argv[1]):
        print(place)
