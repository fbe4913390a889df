"""The committed OpenAPI documents (each project's openapi.json, which the real tier proves
equal to the served ones) pass Redocly's linter, a client we did not write, with no error
and no warning."""

from __future__ import annotations

import os

from artifacts import check, npm_tool
from harness import TEMPLATE

REDOCLY_CONFIG = TEMPLATE / "tests" / "redocly.yaml"


def test_redocly_finds_no_problem_in_any_document(variants) -> None:
    # Every distinct document of every variant, in one run of the linter.
    documents = {}
    for variant in variants.values():
        document = variant.project / "openapi.json"
        documents.setdefault(document.read_text(), document)
    assert len(documents) > 1
    redocly = npm_tool("redocly")
    result = check(
        [redocly, "lint", "--config", REDOCLY_CONFIG, "--format", "stylish", *documents.values()],
        env={**os.environ, "NO_COLOR": "1"},
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    # It read them all, and found nothing to say of any.
    assert report.count(": validated in") == len(documents), report
    assert "Your API descriptions are valid" in report, report
    assert "You have" not in report, report
