"""A real Prometheus server for the tests: Debian's `prometheus` package, started on a free
port with a scrape configuration for the targets it is given, and asked through its HTTP
query API, as a dashboard or an alert would ask it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from artifacts import missing
from services import free_port

SCRAPE_INTERVAL = "1s"
STARTUP_TIMEOUT = 60
QUERY_TIMEOUT = 30


class Prometheus:
    """Prometheus scraping `targets` (job name: host:port) every second, while in `with`."""

    def __init__(self, directory: Path, targets: dict[str, str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            missing("prometheus", "apt-get install prometheus (Debian's package)")
        self.directory = directory
        self.url = f"http://127.0.0.1:{free_port()}"
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.command = [
            str(binary),
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={self.url.removeprefix('http://')}",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        with (self.directory / "prometheus.log").open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=log)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._answers("/-/ready"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not start:\n{self.log()}")
            time.sleep(0.2)
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return (self.directory / "prometheus.log").read_text()

    def _answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, expression: str) -> list[tuple[dict[str, str], float]]:
        """The instant vector the expression evaluates to now: each series' labels and value."""
        query = urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=10) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]

    def value(self, expression: str) -> float | None:
        """The one value of an expression that gives one series (a sum, say), or None."""
        result = self.query(expression)
        assert len(result) <= 1, result
        return result[0][1] if result else None

    def scraped_since(self, job: str, moment: float) -> None:
        """Wait until Prometheus has scraped the job, successfully, after `moment` (time.time)."""
        deadline = time.monotonic() + QUERY_TIMEOUT
        while True:
            # timestamp() gives a scrape's own time only of a plain selector.
            scrapes = self.query(f'timestamp(up{{job="{job}"}})')
            if scrapes and scrapes[0][1] > moment and self.value(f'up{{job="{job}"}}') == 1:
                return
            if time.monotonic() > deadline:
                targets = self._targets()
                pytest.fail(f"no scrape of {job} since {moment}: {targets}\n{self.log()}")
            time.sleep(0.2)

    def _targets(self) -> str:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as response:
            return response.read().decode()
