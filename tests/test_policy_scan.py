"""The policy scanner: checkov finds no failed check in the Dockerfiles and rendered
overlays, but for the skips each justified inline."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from artifacts import (
    ACCEPTED_CHECKOV_SKIPS,
    CHECKOV_REQUIREMENTS,
    TOOLS_CACHE,
    WORKER_CHECKOV_SKIPS,
    check,
    missing,
)
from harness import (
    UV,
)


@pytest.fixture(scope="session")
def checkov(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkov in a virtual environment of its own (it pins old versions of common
    packages), made once per set of pins and kept in the user's cache, where every
    checkout of the template (CI's clean clones too) finds it."""
    digest = hashlib.sha256(CHECKOV_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    venv = TOOLS_CACHE / f"checkov-{digest}"
    binary = venv / "bin" / "checkov"
    if not binary.exists():
        # Made in place: its scripts name their interpreter by path.
        shutil.rmtree(venv, ignore_errors=True)
        environment = {**os.environ, "UV_SYSTEM_CERTS": "1"}
        python = venv / "bin" / "python"
        for command in (
            [*UV, "venv", "--quiet", "--python", sys.executable, venv],
            [*UV, "pip", "install", "--quiet", "--python", python, "-r", CHECKOV_REQUIREMENTS],
        ):
            result = check(command, env=environment)
            if result.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                missing("checkov", f"its install failed: {result.stderr[-2000:]}")
    # Its bytecode, compiled once (then found up to date): the scan runs with the
    # environment of these tests, which may forbid writing it (PYTHONDONTWRITEBYTECODE), and
    # would otherwise compile its thousands of modules on every run.
    check([venv / "bin" / "python", "-m", "compileall", "-q", venv / "lib"])
    return binary


def test_checkov_finds_no_failed_check(variants, checkov: Path, tmp_path: Path) -> None:
    # One scan over every Dockerfile and every rendered overlay.
    for variant in variants.values():
        target = tmp_path / variant.name
        target.mkdir()
        shutil.copy(variant.project / "Dockerfile", target / "Dockerfile")
        for overlay in ("overlays/dev", "overlays/prod"):
            shutil.copy(variant.rendered[overlay], target / variant.rendered[overlay].name)
    result = check(
        [
            checkov,
            "--skip-download",
            "--compact",
            "--output",
            "json",
            "--framework",
            "kubernetes",
            "dockerfile",
            "--directory",
            tmp_path,
        ],
        # Offline: no policy download (--skip-download), no guideline mapping from the API.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}, result.stderr
    failed = [
        f"{c['check_id']} {c['file_path']} {c['resource']}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    assert all(r["summary"]["passed"] > 0 for r in reports)
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    dockerfiles = next(r for r in reports if r["check_type"] == "dockerfile")
    assert dockerfiles["summary"]["resource_count"] == len(variants)
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    assert {c["check_id"] for c in skipped} <= ACCEPTED_CHECKOV_SKIPS | WORKER_CHECKOV_SKIPS
    assert all(len(c["check_result"].get("suppress_comment", "")) > 20 for c in skipped)
    # The probe checks are skipped only on the objects that run a worker or a scheduler.
    for found in skipped:
        if found["check_id"] in WORKER_CHECKOV_SKIPS:
            (name,) = [part for part in Path(found["file_path"]).parts if part in variants]
            variant = variants[name]
            pods = {
                d["metadata"]["name"]
                for d in variant.kind("overlays/prod", "Deployment")
                if {c["name"] for c in d["spec"]["template"]["spec"]["containers"]}
                & {"worker", "scheduler"}
            }
            assert found["resource"].rsplit(".", 1)[-1] in pods, found["resource"]
