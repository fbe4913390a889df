"""compose.yaml, for every combination: valid under the compose spec and Compose v2, and a
stack in order that publishes only the web port, and the metrics on loopback."""

from __future__ import annotations

import os
import re
from pathlib import Path

from artifacts import (
    Variant,
    check,
    combinations_of,
    compose_binary,
    compose_of,
    tool,
)


def compose_files(variants: dict[str, Variant]) -> list[Path]:
    return [v.project / "compose.yaml" for v in combinations_of(variants)]


def test_compose_files_match_the_compose_spec(variants) -> None:
    schema_check = tool("check-jsonschema")
    result = check(
        [schema_check, "--builtin-schema", "vendor.compose-spec", *compose_files(variants)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_files_resolve_with_compose_v2(variants) -> None:
    compose = compose_binary()
    for variant in combinations_of(variants):
        environment = {"PATH": os.environ["PATH"], "HOME": str(variant.project)}
        result = check([compose, "config", "--quiet"], cwd=variant.project, env=environment)
        assert result.returncode == 0, f"{variant.name}: {result.stdout}{result.stderr}"


def test_compose_orders_the_stack_and_publishes_the_api_and_loopback_metrics(
    baked, combination
) -> None:
    project = baked(combination)
    services = compose_of(project)["services"]
    database = combination["database"]
    # The API on every address; the metrics, which are not for clients, on loopback only.
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    expected = {
        "web": [
            "${PORT:-8000}:${PORT:-8000}",
            "127.0.0.1:${METRICS_PORT:-9464}:${METRICS_PORT:-9464}",
        ]
    }
    if combination.get("worker", "none") != "none":
        expected["worker"] = ["127.0.0.1:${WORKER_METRICS_PORT:-9465}:${WORKER_METRICS_PORT:-9465}"]
    assert published == expected
    # Every health check of the stack runs every second while its service starts, as the
    # image's does (web has no check of its own), so that `up --wait` returns without delay;
    # none is disabled, which would make `up --wait` fail.
    assert "healthcheck" not in services["web"]
    for name, service in services.items():
        if "healthcheck" in service:
            assert "disable" not in service["healthcheck"], name
            assert service["healthcheck"]["start_interval"] == "1s", name
            assert service["healthcheck"]["start_period"], name
    for name in ("web", "migrate", "worker", "scheduler"):
        if name in services:
            assert services[name]["build"] == "."
            assert services[name]["image"] == f"{project.name}:0.1.0"
            assert services[name]["env_file"] == ".env"
    if database == "none":
        assert set(services) == {"web"}
        return
    assert services["migrate"]["command"] == ["migrate"]
    assert services["web"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"}
    }
    volumes = compose_of(project)["volumes"]
    if combination.get("worker", "none") != "none":
        # The worker's processes start once the schema is there and the broker answers.
        for name, command in (("worker", ["worker"]), ("scheduler", ["scheduler"])):
            service = services.pop(name)
            assert service["command"] == command
            assert service["depends_on"] == {
                "migrate": {"condition": "service_completed_successfully"},
                "broker": {"condition": "service_healthy"},
            }
        broker = services.pop("broker")
        assert re.fullmatch(r"(redis|rabbitmq):\d+\.\d+\.\d+-alpine", broker["image"])
        assert "test" in broker["healthcheck"]
    if database == "sqlite":
        assert set(services) == {"web", "migrate"}
        assert services["web"]["volumes"] == services["migrate"]["volumes"] == ["data:/data"]
        assert set(volumes) == {"data"}
    else:
        assert set(services) == {"web", "migrate", "database"}
        assert services["migrate"]["depends_on"] == {"database": {"condition": "service_healthy"}}
        server = services["database"]
        assert re.fullmatch(r"[a-z][a-z0-9-]*:\d+\.\d+(\.\d+)?(-\w+)?", server["image"])
        assert server["healthcheck"]["test"][0] == "CMD"
        assert [volume.split(":")[0] for volume in server["volumes"]] == ["database"]
        assert set(volumes) == {"database"}
