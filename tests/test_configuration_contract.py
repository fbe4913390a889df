"""The one configuration contract: .env.example, the settings object, compose and the
Kubernetes ConfigMap and Secret name the same variables, with the same defaults."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from artifacts import (
    combinations_of,
    compose_of,
)


def env_names(text: str) -> list[str]:
    return [
        line.partition("=")[0]
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    ]


def settings_names(project: Path) -> set[str]:
    settings = next(project.glob("src/*/settings.py")).read_text()
    body = settings.partition("class Settings(BaseSettings):")[2]
    return {name.upper() for name in re.findall(r"^    (\w+): ", body, re.MULTILINE)}


def test_one_configuration_contract(variants) -> None:
    for variant in combinations_of(variants):
        project = variant.project
        example = env_names((project / ".env.example").read_text())
        assert len(example) == len(set(example))
        contract = set(example)
        assert settings_names(project) == contract, variant.name
        # Kubernetes: the ConfigMap and the Secret together hold every variable, once.
        for overlay in ("overlays/dev",):
            config = set(variant.kind(overlay, "ConfigMap")[0]["data"])
            secret = set(variant.kind(overlay, "Secret")[0]["data"])
            assert not config & secret
            assert config | secret == contract, variant.name
        secret_example = project / "deploy" / "k8s" / "overlays" / "dev" / "secrets.env.example"
        base_config = env_names((project / "deploy" / "k8s" / "base" / "config.env").read_text())
        assert set(base_config) | set(env_names(secret_example.read_text())) == contract
        # compose: .env for everything; `environment` only names variables of the contract.
        for name, service in compose_of(project)["services"].items():
            if service.get("env_file") == ".env":
                assert set(service.get("environment", {})) <= contract, name


def env_values(text: str) -> dict[str, str]:
    return dict(
        line.partition("=")[::2]
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )


def test_the_default_heartbeat_file_is_the_projects_own(variants) -> None:
    # Every service on a host shares /tmp: one project's worker must never vouch for
    # another's. The longest-names variant has a slug of its own.
    for variant in variants.values():
        if not variant.has_worker:
            continue
        project = variant.project
        settings = next(project.glob("src/*/settings.py")).read_text()
        (default,) = re.findall(r'^DEFAULT_HEARTBEAT_FILE = Path\(\s*"(.+?)"', settings, re.M)
        assert Path(default).name == f"{project.name}-worker-heartbeat", variant.name
        # Everything that names the default names the same file.
        example = env_values((project / ".env.example").read_text())
        base_config = env_values((project / "deploy" / "k8s" / "base" / "config.env").read_text())
        config = variant.kind("overlays/prod", "ConfigMap")[0]["data"]
        assert example["WORKER_HEARTBEAT_FILE"] == default, variant.name
        assert base_config["WORKER_HEARTBEAT_FILE"] == default, variant.name
        assert config["WORKER_HEARTBEAT_FILE"] == default, variant.name
        assert f"| `WORKER_HEARTBEAT_FILE` | `{default}` |" in (project / "README.md").read_text()


def test_dev_secrets_are_fresh_and_decode_to_the_file(variants) -> None:
    for variant in combinations_of(variants):
        secrets_file = variant.project / "deploy" / "k8s" / "overlays" / "dev" / "secrets.env"
        values = dict(line.split("=", 1) for line in secrets_file.read_text().splitlines())
        (secret,) = variant.kind("overlays/dev", "Secret")
        decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert decoded == values
        assert len(values["SECRET_KEY"]) >= 32
        assert values["SECRET_KEY"] != "change-me"
