"""bench/telemetry.py's "metrics off" mode: on this directory's path (PYTHONPATH), every Python
process of the service imports its metrics module (BENCH_METRICS_MODULE) as generated, then
stops it recording requests. Nothing else changes, so the difference from the service as
generated is what recording its request metrics costs."""

import importlib.abc
import importlib.util
import os
import sys
from types import ModuleType

TARGET = os.environ["BENCH_METRICS_MODULE"]


def do_nothing(*_args: object) -> None:
    pass


def switch_off(metrics: ModuleType) -> None:
    metrics.observe = do_nothing
    metrics.IN_FLIGHT.inc = do_nothing
    metrics.IN_FLIGHT.dec = do_nothing


class MetricsOff(importlib.abc.MetaPathFinder):
    """Finds the metrics module as Python would, and switches it off once it has run: it is
    not imported here and now, because prometheus_client must first see the variables the
    service's commands set."""

    def find_spec(self, name: str, path: object, target: object = None) -> object:
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            raise ImportError(f"metrics off: no module {name}")
        exec_module = spec.loader.exec_module

        def exec_and_switch_off(module: ModuleType) -> None:
            exec_module(module)
            switch_off(module)

        spec.loader.exec_module = exec_and_switch_off  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, MetricsOff())
