"""The Dockerfile and .dockerignore, for every variant: hadolint finds nothing, the image is
multi-stage, slim, non-root and labelled, uses the pinned uv, and keeps secrets out."""

from __future__ import annotations

import json
import re

from artifacts import (
    IMAGE_UID,
    TEMPLATE_VERSION,
    check,
    dockerignored,
    instructions,
    tool,
)
from harness import (
    TEMPLATE,
)


def test_dockerfiles_pass_hadolint_without_a_warning(variants) -> None:
    dockerfiles = [v.project / "Dockerfile" for v in variants.values()]
    result = check([tool("hadolint"), "--failure-threshold", "style", *dockerfiles])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_image_is_multi_stage_slim_non_root_and_labelled(variants) -> None:
    for variant in variants.values():
        steps = instructions(variant.project / "Dockerfile")
        stages = [arguments for keyword, arguments in steps if keyword == "FROM"]
        python = f"python:{variant.answers.get('python_version', '3.13')}."
        base = [s for s in stages if s.startswith("python:")]
        assert len(base) == 1, stages  # pinned in one place
        assert base[0].startswith(python)
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+ AS python", base[0])
        assert stages[-1] == "python AS runtime"
        runtime = steps[len(steps) - 1 - [k for k, _ in reversed(steps)].index("FROM") :]
        runtime_runs = " ".join(a for k, a in runtime if k == "RUN")
        # No compiler, headers or uv in the image that runs.
        assert not re.search(r"gcc|-dev\b|build-essential|\buv\b", runtime_runs)
        assert ("USER", f"{IMAGE_UID}:{IMAGE_UID}") in runtime
        (healthcheck,) = [a for k, a in runtime if k == "HEALTHCHECK"]
        assert "CMD [" in healthcheck
        # Checked every second while the service starts, so that it is healthy (and
        # `docker compose up --wait` returns) as soon as it answers.
        assert re.search(r"--start-period=\d+s --start-interval=1s ", healthcheck)
        for keyword in ("ENTRYPOINT", "CMD"):
            (command,) = [json.loads(a) for k, a in runtime if k == keyword]
            assert isinstance(command, list)
        labels = " ".join(a for k, a in runtime if k == "LABEL")
        assert f'python-service-template.version="{TEMPLATE_VERSION}"' in labels
        assert 'org.opencontainers.image.version="0.1.0"' in labels


def test_image_uses_the_uv_the_template_pins() -> None:
    dockerfile = (TEMPLATE / "{{cookiecutter.project_slug}}" / "Dockerfile").read_text()
    requirements = (TEMPLATE / "requirements.txt").read_text()
    pinned = re.search(r"^uv==(\S+)$", requirements, re.MULTILINE).group(1)
    assert re.findall(r"ghcr\.io/astral-sh/uv:(\S+)", dockerfile) == [pinned]


def test_dockerignore_keeps_secrets_vcs_caches_and_tests_out(baked) -> None:
    project = baked({"framework": "fastapi", "database": "sqlite"})
    lines = (project / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line.strip() and not line.startswith("#")]
    kept_out = [
        ".env",
        ".git/HEAD",
        ".venv/bin/python",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
        "tests/test_health.py",
        "deploy/k8s/overlays/dev/secrets.env",
        "src/my_service/__pycache__/app.cpython-313.pyc",
        "app.db",
    ]
    needed = ["pyproject.toml", "uv.lock", "README.md", "LICENSE", "src/my_service/app.py"]
    assert [p for p in kept_out if not dockerignored(patterns, p)] == []
    assert [p for p in needed if dockerignored(patterns, p)] == []
    # Everything the Dockerfile copies is in the context.
    copied = [
        source
        for keyword, arguments in instructions(project / "Dockerfile")
        if keyword == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    ]
    assert copied
    assert [source for source in copied if dockerignored(patterns, source)] == []
