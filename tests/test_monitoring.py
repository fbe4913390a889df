"""deploy/monitoring, for every distinct variant of it: Prometheus's own checker, promtool,
finds the alerting rules valid and their unit tests (alerts.test.yaml) passing, and loads the
example scrape configuration with its rules; each project has the alerts of its parts, each
alert tested firing and silent; and the scrape configuration, applied to the rendered
manifests' pods, keeps each job's metrics port and nothing else."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from artifacts import Variant, check, combinations_of, system_tool

MONITORING = Path("deploy") / "monitoring"
WEB_ALERTS = {"ServiceTargetDown", "ServiceDown", "ServiceErrorRatioHigh", "ServiceLatencyHigh"}
# Only where a readiness check asks a dependency: a database (and a broker with a worker).
READINESS_ALERTS = {"ServiceDependencyNotReady"}
WORKER_ALERTS = {
    "WorkerTargetDown",
    "WorkerDown",
    "WorkerTaskFailureRatioHigh",
    "WorkerBacklogLarge",
    "WorkerBacklogGrowing",
}
ANNOTATIONS = {"summary", "description", "runbook"}
SEVERITIES = {"warning", "critical"}


@pytest.fixture(scope="module")
def promtool() -> Path:
    # Debian's prometheus package (2.42), which .ci/run installs where it is missing.
    return system_tool("promtool", "prometheus")


def distinct(variants: dict[str, Variant]) -> list[Variant]:
    """One variant per distinct content of deploy/monitoring (most combinations share one)."""
    found: dict[tuple[tuple[str, str], ...], Variant] = {}
    for variant in variants.values():
        directory = variant.project / MONITORING
        content = tuple((p.name, p.read_text()) for p in sorted(directory.iterdir()))
        found.setdefault(content, variant)
    return list(found.values())


def alerts_of(variant: Variant) -> list[dict[str, Any]]:
    document = yaml.safe_load((variant.project / MONITORING / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_each_project_has_the_alerts_of_its_parts(variants) -> None:
    # Every kind the task asks for among the distinct variants: no database and no worker, a
    # database without a worker, and a database with a worker.
    kinds = set()
    for variant in combinations_of(variants):
        names = {rule["alert"] for rule in alerts_of(variant)}
        expected = set(WEB_ALERTS)
        if variant.answers["database"] != "none":
            expected |= READINESS_ALERTS
        if variant.has_worker:
            expected |= WORKER_ALERTS
        assert names == expected, variant.name
        kinds.add((variant.answers["database"] != "none", variant.has_worker))
    assert kinds == {(False, False), (True, False), (True, True)}


def test_every_alert_is_labelled_explained_and_tested_firing_and_silent(variants) -> None:
    for variant in distinct(variants):
        directory = variant.project / MONITORING
        tests = yaml.safe_load((directory / "alerts.test.yaml").read_text())
        cases = [case for test in tests["tests"] for case in test["alert_rule_test"]]
        for rule in alerts_of(variant):
            where = f"{variant.name} {rule['alert']}"
            assert rule["for"], where
            assert rule["labels"]["severity"] in SEVERITIES, where
            assert set(rule["annotations"]) == ANNOTATIONS, where
            # What to check and what to do, in the annotation itself.
            assert len(rule["annotations"]["runbook"].split()) >= 30, where
            expected = [case["exp_alerts"] for case in cases if case["alertname"] == rule["alert"]]
            assert any(expected), f"{where}: never tested firing"
            assert [] in expected, f"{where}: never tested silent"


def test_promtool_finds_the_rules_valid_and_their_tests_pass(variants, promtool: Path) -> None:
    for variant in distinct(variants):
        directory = variant.project / MONITORING
        rules = check([promtool, "check", "rules", "alerts.yaml"], cwd=directory)
        output = rules.stdout + rules.stderr
        assert rules.returncode == 0, f"{variant.name}: {output}"
        assert f"SUCCESS: {len(alerts_of(variant))} rules found" in output, output
        tests = check([promtool, "test", "rules", "alerts.test.yaml"], cwd=directory)
        output = tests.stdout + tests.stderr
        assert tests.returncode == 0, f"{variant.name}: {output}"
        assert "SUCCESS" in output, output


def test_promtool_loads_the_scrape_configuration_and_its_rules(
    variants, promtool: Path, tmp_path: Path
) -> None:
    for variant in distinct(variants):
        directory = tmp_path / variant.name
        shutil.copytree(variant.project / MONITORING, directory)
        configuration = yaml.safe_load((directory / "scrape.yaml").read_text())
        # Debian builds its promtool 2.42 without Kubernetes discovery ("field
        # kubernetes_sd_configs not found"): a copy discovers the same jobs from a file
        # instead, and promtool checks everything else (relabelling, rule files) as it is.
        for job in configuration["scrape_configs"]:
            assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}], job["job_name"]
            job["file_sd_configs"] = [{"files": ["targets.yaml"]}]
        (directory / "scrape.yaml").write_text(yaml.safe_dump(configuration))
        (directory / "targets.yaml").write_text("[]\n")
        result = check([promtool, "check", "config", "scrape.yaml"], cwd=directory)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{variant.name}: {output}"
        assert "SUCCESS: 1 rule files found" in output, output
        assert "WARNING" not in output, output


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus's relabelling of one target (the actions scrape.yaml uses), or None where
    it drops the target."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(n, "") for n in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            labels[rule["target_label"]] = match.expand(rule.get("replacement", r"\1"))
    return labels


def discovered(variant: Variant) -> Iterator[tuple[dict[str, Any], str, dict[str, str]]]:
    """What Kubernetes discovery (role pod) finds of the prod overlay's pods: a target for
    each port of each container, with its meta labels."""
    for deployment in variant.kind("overlays/prod", "Deployment"):
        template = deployment["spec"]["template"]
        meta = {
            "__meta_kubernetes_namespace": deployment["metadata"]["namespace"],
            "__meta_kubernetes_pod_name": f"{deployment['metadata']['name']}-a",
            "__meta_kubernetes_pod_phase": "Running",
        }
        for name, value in template["metadata"]["labels"].items():
            meta[f"__meta_kubernetes_pod_label_{re.sub(r'[^a-zA-Z0-9_]', '_', name)}"] = value
        for name, value in template["metadata"].get("annotations", {}).items():
            meta[f"__meta_kubernetes_pod_annotation_{re.sub(r'[^a-zA-Z0-9_]', '_', name)}"] = value
        for container in template["spec"]["containers"]:
            for port in container.get("ports", []):
                yield (
                    container,
                    f"{container['name']}/{port['name']}",
                    {
                        **meta,
                        "__address__": f"10.0.0.1:{port['containerPort']}",
                        "__metrics_path__": "/metrics",
                        "__meta_kubernetes_pod_container_name": container["name"],
                        "__meta_kubernetes_pod_container_port_name": port["name"],
                    },
                )


def test_the_scrape_jobs_keep_each_metrics_port_and_nothing_else(variants) -> None:
    for variant in combinations_of(variants):
        slug = variant.project.name
        directory = variant.project / MONITORING
        configuration = yaml.safe_load((directory / "scrape.yaml").read_text())
        assert configuration["rule_files"] == ["alerts.yaml"]
        scraped = {}
        for job in configuration["scrape_configs"]:
            for _container, port, meta in discovered(variant):
                target = relabel(meta, job["relabel_configs"])
                if target is not None:
                    assert target["__metrics_path__"] == "/metrics"
                    assert target["namespace"] == meta["__meta_kubernetes_namespace"]
                    assert target["pod"] == meta["__meta_kubernetes_pod_name"]
                    scraped.setdefault(job["job_name"], []).append(port)
        expected = {slug: ["web/metrics"]}
        if variant.has_worker:
            port = "worker-metrics" if variant.answers["database"] == "sqlite" else "metrics"
            expected[f"{slug}-worker"] = [f"worker/{port}"]
        assert scraped == expected, variant.name
        # The alerts select the series of exactly these jobs.
        text = (directory / "alerts.yaml").read_text()
        assert set(re.findall(r'job="([^"]+)"', text)) == set(expected), variant.name
