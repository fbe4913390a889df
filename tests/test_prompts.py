"""Prompts: cookiecutter asks every option in a real terminal, each prompt and choice label
shows there exactly as cookiecutter.json writes it (the prompt library reads square brackets
as markup and would swallow them), and the answers typed are the ones baked."""

from __future__ import annotations

import sys
from pathlib import Path

from harness import COOKIECUTTER_JSON, TEMPLATE
from terminal import run_in_terminal

LABELS = COOKIECUTTER_JSON["__prompts__"]
OPTIONS = [option for option in COOKIECUTTER_JSON if not option.startswith("_")]
# Typed at the prompts (by option); every other prompt takes its default with Enter.
TYPED = {"framework": "2", "database": "2"}


def test_every_label_shows_as_written_and_the_typed_answers_are_baked(tmp_path: Path) -> None:
    config = tmp_path / "cookiecutterrc.yaml"
    config.write_text(f"replay_dir: {tmp_path / 'replay'}\n")
    asked: list[str] = []

    def respond(screen: str) -> str | None:
        if not screen.endswith(": "):
            return None
        option = OPTIONS[len(asked)]
        asked.append(option)
        return TYPED.get(option, "")

    status, screen = run_in_terminal(
        [sys.executable, "-m", "cookiecutter", str(TEMPLATE), "-o", str(tmp_path / "out")],
        respond,
        cwd=tmp_path,
        environment={"PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "HOME": str(tmp_path)}
        | {"COOKIECUTTER_CONFIG": str(config)},
    )
    assert status == 0, screen
    assert asked == OPTIONS
    lines = screen.splitlines()
    for number, option in enumerate(OPTIONS, start=1):
        label = LABELS[option]
        title = label["__prompt__"] if isinstance(label, dict) else label
        prompt = f"  [{number}/{len(OPTIONS)}] {title}"
        if isinstance(label, dict):
            assert prompt in lines, f"{option}: {prompt!r} not shown:\n{screen}"
            start = lines.index(prompt) + 1
            shown = lines[start : start + len(COOKIECUTTER_JSON[option])]
            assert shown == [
                f"    {index} - {label[value]}"
                for index, value in enumerate(COOKIECUTTER_JSON[option], start=1)
            ], screen
        else:
            assert any(line.startswith(f"{prompt} (") for line in lines), (
                f"{option}: {prompt!r} not shown:\n{screen}"
            )
    pyproject = (tmp_path / "out" / "my-service" / "pyproject.toml").read_text()
    assert '"flask' in pyproject
    assert '"psycopg' in pyproject
