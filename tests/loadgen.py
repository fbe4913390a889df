"""A small HTTP load generator: threads on keep-alive connections to one loopback service,
bounded by a request count and a duration. The reliability tests use it (no tool to install),
and the service benchmark falls back to it where wrk is not installed."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# The reliability tests and the benchmarks send traffic to this machine only.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """Latency in seconds below which `fraction` of the requests completed."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        if len(ordered) == 1:
            return ordered[0]
        return statistics.quantiles(ordered, n=1000, method="inclusive")[
            min(998, max(0, round(fraction * 1000) - 1))
        ]


Request = tuple[str, str, bytes | None]  # method, path, body


def run_load(
    url: str,
    requests: Sequence[Request] | Callable[[int], Request],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    timeout: float = 15.0,
) -> LoadResult:
    """Send up to max_requests (cycling through `requests`, or asking it for the n-th one)
    from `concurrency` threads, for at most max_seconds; record every status and latency."""
    target = urlsplit(url)
    if target.hostname not in LOOPBACK:
        raise ValueError(f"load is only ever sent to loopback, not {target.hostname}")
    next_request = requests if callable(requests) else lambda n: requests[n % len(requests)]
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(max_requests))
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        errors: list[str] = []
        while time.monotonic() < deadline:
            with lock:
                number = next(counter, None)
            if number is None:
                break
            method, path, body = next_request(number)
            headers = {"Content-Type": "application/json"} if body is not None else {}
            start = time.perf_counter()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{method} {path}: {error!r}")
                connection.close()
                connection = http.client.HTTPConnection(
                    target.hostname, target.port, timeout=timeout
                )
                continue
            latencies.append(time.perf_counter() - start)
            statuses[response.status] += 1
            if response.will_close:
                connection.close()
        connection.close()
        with lock:
            result.statuses.update(statuses)
            result.latencies.extend(latencies)
            result.errors.extend(errors)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - start
    return result
