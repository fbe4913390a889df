"""What every tier of the template's tests shares: the template, its rule set, the matrix of
valid combinations, and baking. Fixtures are in conftest.py."""

from __future__ import annotations

import atexit
import fcntl
import functools
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config
from jinja2 import Environment
from jinja2.lexer import get_lexer
from uv import find_uv_bin

TEMPLATE = Path(__file__).resolve().parent.parent
# The project skeleton: what cookiecutter renders into a project.
SKELETON = TEMPLATE / "{{cookiecutter.project_slug}}"
COOKIECUTTER_JSON: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text())
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def load_hook(name: str) -> ModuleType:
    """A hook as a module; its rendered answers are only read when it runs as a script."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PRE_GEN = load_hook("pre_gen_project")
POST_GEN = load_hook("post_gen_project")
CHOICES: dict[str, list[str]] = PRE_GEN.choices_of(COOKIECUTTER_JSON)
# The facts of each choice value, by option: the table the template's files read.
FACTS: dict[str, Any] = PRE_GEN.facts_of(TEMPLATE)

# Files the post-generation hook writes and git ignores; a bake without hooks lacks them.
HOOK_WRITTEN = {".env", "deploy/k8s/overlays/dev/secrets.env"}

# The choices that change what is generated; every valid combination of them is baked.
MATRIX = ("framework", "database", "worker", "broker")
# A choice that means nothing unless another one has a value: (choice, unless, value).
IGNORED = (("broker", "worker", "none"),)


# Bakes a combination (with extra answers) and returns the project: the `baked` fixture.
Baker = Callable[..., Path]

# The longest project name the static checks and the artifacts bake with: the names derived
# from it (slug, package, Kubernetes objects) are at their limits.
LONGEST_NAME = "Customer Order Fulfilment and Billing Reconciliation Gateway 2"


def answers_for(**extra: Any) -> dict[str, Any]:
    """The answers cookiecutter gives with --no-input and this extra context."""
    context = generate_context(
        context_file=str(TEMPLATE / "cookiecutter.json"), extra_context=extra
    )
    return dict(prompt_for_config(context, no_input=True))


def meaningful(combination: dict[str, str]) -> bool:
    """False for a duplicate: an ignored choice other than its default (broker without worker)."""
    return all(
        combination[option] == CHOICES[option][0]
        for option, other, value in IGNORED
        if combination[other] == value
    )


def all_combinations() -> list[dict[str, str]]:
    combinations = [
        dict(zip(MATRIX, values, strict=True))
        for values in itertools.product(*(CHOICES[option] for option in MATRIX))
    ]
    return [c for c in combinations if meaningful(c)]


def is_valid(combination: dict[str, str]) -> bool:
    return not PRE_GEN.violations(answers_for(**combination), CHOICES, FACTS)


VALID_COMBINATIONS = [c for c in all_combinations() if is_valid(c)]
INVALID_COMBINATIONS = [c for c in all_combinations() if not is_valid(c)]


def combination_id(combination: dict[str, str]) -> str:
    """framework-database, then worker-broker for a project with a worker."""
    values = {option: CHOICES[option][0] for option in MATRIX} | combination
    shown = [o for o in MATRIX if not any(o == option for option, _, _ in IGNORED)]
    if values["worker"] == "none":
        shown.remove("worker")
    else:
        shown += [option for option, _, _ in IGNORED]
    return "-".join(values[option] for option in shown)


def one_database_per_worker(combinations: list[dict[str, str]]) -> list[dict[str, str]]:
    """Every combination without a worker, and each framework, worker and broker once, on the
    databases in turn: for the tests whose subject does not change with the worker (every
    database with every worker runs a real worker in the project's own suite)."""
    with_worker: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for c in combinations:
        if c["worker"] != "none":
            with_worker.setdefault((c["framework"], c["worker"], c["broker"]), []).append(c)
    return [c for c in combinations if c["worker"] == "none"] + [
        databases[turn % len(databases)] for turn, databases in enumerate(with_worker.values())
    ]


def compile_once(compile_template: Callable[..., Any]) -> Callable[..., Any]:
    """Jinja's compilation, kept by this process for every bake. Cookiecutter makes an
    environment for each bake, which compiles each of the skeleton's templates again: most
    of a bake's time. What Jinja compiles from a source depends only on it, its names and
    the settings of the environment (its syntax, extensions, autoescaping), which are kept
    with it; a bake then renders exactly what it would have."""
    compiled: dict[tuple[Any, ...], Any] = {}

    @functools.wraps(compile_template)
    def compile(
        environment: Environment,
        source: Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        if not isinstance(source, str):
            return compile_template(environment, source, name, filename, raw, defer_init)
        settings = (
            type(environment),
            get_lexer(environment),
            tuple(sorted(environment.extensions)),
            environment.autoescape,
            environment.optimized,
            environment.is_async,
        )
        key = (settings, source, name, filename, raw, defer_init)
        if key not in compiled:
            compiled[key] = compile_template(environment, source, name, filename, raw, defer_init)
        return compiled[key]

    return compile


Environment.compile = compile_once(Environment.compile)  # type: ignore[method-assign]


def bake(
    output_dir: Path, *, accept_hooks: bool = True, template: Path = TEMPLATE, **extra: Any
) -> Path:
    """Generate a project with --no-input into output_dir (from this template, or another
    revision's checkout) and return its directory."""
    project = cookiecutter(
        str(template),
        no_input=True,
        extra_context=extra,
        output_dir=str(output_dir),
        accept_hooks=accept_hooks,
        # Keep the user's replay directory out of it.
        config_file=str(isolated_config(output_dir)),
    )
    return Path(project)


def isolated_config(output_dir: Path) -> Path:
    config = output_dir.parent / f".{output_dir.name}-cookiecutterrc.yaml"
    config.write_text(
        f"cookiecutters_dir: {output_dir.parent / '.cookiecutters'}\n"
        f"replay_dir: {output_dir.parent / '.replay'}\n"
    )
    return config


def requirements_pin(name: str) -> str:
    """The version requirements.txt pins a package to."""
    pin = re.search(
        rf"^{re.escape(name)}==(\S+)$", (TEMPLATE / "requirements.txt").read_text(), re.M
    )
    assert pin, f"requirements.txt pins no {name}"
    return pin[1]


def files_of(project: Path) -> dict[str, bytes]:
    """Every file below project by its relative path, with its contents."""
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file()
    }


# Installing and running baked projects (the real tiers).

# What a generated project's CI runs to check itself, in order. The real tier runs the same
# commands (ruff: the fast tier, with the same pinned version), and a test holds every CI
# variant to them.
PROJECT_CHECKS = (
    "uv sync",
    "uv run ruff check .",
    "uv run ruff format --check .",
    "uv run mypy",
    "uv run pytest",
)

# uv from the template's own requirements, whatever PATH holds. The binary itself: its
# Python wrapper exports this virtual environment to the project it runs.
UV = [find_uv_bin()]

# The servers of the development and CI machines (CONTRIBUTING.md, Test tiers, real).
# A database server is named by its facts: its port and administrator (as CI's has them).
SERVER_URLS = {
    value: f"{value}://{facts['admin']['user']}@127.0.0.1:{facts['port']}/{{name}}"
    for value, facts in FACTS["database"].items()
    if facts["server"]
}
BROKER_URLS = {
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/%2F",
}


# One mypy cache for every project this test process checks: most of a cold run is the
# libraries' stubs, the same files in every project's environment (uv links them from its
# cache), and mypy takes a cached module whose path differs once its hash matches. One per
# process: mypy does not share a cache between processes that write it at once.
MYPY_CACHE = Path(tempfile.mkdtemp(prefix="template-tests-mypy-"))
atexit.register(shutil.rmtree, MYPY_CACHE, ignore_errors=True)


def environment_for(combination: dict[str, str], purpose: str = "tests") -> dict[str, str]:
    """The environment to install and run a baked project in, with a database of its own."""
    environment = {
        key: value
        for key, value in os.environ.items()
        # The project's own configuration comes from its .env; the template's session
        # must not leak into it.
        if not key.startswith(("VIRTUAL_ENV", "PYTEST_", "COOKIECUTTER"))
        # A project's processes write their bytecode, as on a developer's machine: without
        # it every process it starts (server, worker, command, test run) compiles its
        # libraries again, about three times the CPU of an import from bytecode.
        and key != "PYTHONDONTWRITEBYTECODE"
    }
    # Never download an interpreter: use the one running these tests.
    environment.update({"UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON": sys.executable})
    environment["MYPY_CACHE_DIR"] = str(MYPY_CACHE)
    if combination["database"] in SERVER_URLS:
        # Unique per combination and per run: parallel runs on one server do not collide.
        name = f"tmpl_{purpose}_{combination_id(combination).replace('-', '_')}_{os.getpid()}"
        environment["DATABASE_URL"] = SERVER_URLS[combination["database"]].format(name=name)
    if combination.get("worker", "none") != "none":
        environment["BROKER_URL"] = BROKER_URLS[combination["broker"]]
        # Queues (and Redis keys) of their own: parallel runs on one broker do not collide.
        environment["WORKER_QUEUE"] = f"tmpl-{purpose}-{combination_id(combination)}-{os.getpid()}"
    return environment


# Every Redis key whose name holds ARGV[1], and every hash whose `origin` field starts with
# it: RQ names its jobs by id alone, and records their queue there.
REDIS_KEYS_OF_QUEUES = """
local found = {}
for _, key in ipairs(redis.call("KEYS", "*")) do
    if string.find(key, ARGV[1], 1, true) then
        table.insert(found, key)
    elseif redis.call("TYPE", key).ok == "hash" then
        local origin = redis.call("HGET", key, "origin")
        if origin and string.find(origin, ARGV[1], 1, true) == 1 then
            table.insert(found, key)
        end
    end
end
return found
"""


def broker_state_of_queues(broker: str, prefix: str) -> list[str]:
    """What the broker of this machine holds for the queues whose names start with prefix:
    Redis keys (and RQ jobs), or RabbitMQ queues and exchanges. Asked with the servers' own
    command-line clients, which come with them."""
    if broker == "redis":
        command = ["redis-cli", "-u", BROKER_URLS["redis"], "EVAL", REDIS_KEYS_OF_QUEUES, "0"]
        return sorted(line for line in tool_output([*command, prefix]).splitlines() if line)
    found = []
    for kind in ("queues", "exchanges"):
        command = ["rabbitmqctl", "--quiet", f"list_{kind}", "--no-table-headers", "name"]
        names = tool_output(command).splitlines()
        found += [f"{kind[:-1]} {name}" for name in names if name.startswith(prefix)]
    return found


def tool_output(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def run(command: list[str], project: Path, environment: dict[str, str]) -> str:
    result = subprocess.run(
        command,
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return output


# The wheels uv has unpacked in its cache (its archive bucket), whose bytecode this process
# has compiled, by directory name.
COMPILED_WHEELS: set[str] = set()
COMPILING_LOCK = Path(tempfile.gettempdir()) / "template-tests-uv-bytecode.lock"


def sync(project: Path, environment: dict[str, str]) -> None:
    """`uv sync` a baked project, as its README says, then compile the bytecode of the
    libraries it installed where uv keeps them. uv links a project's files from the wheels
    it unpacked in its cache, and a wheel's __pycache__ is linked with the rest: the projects
    installed after this one import their libraries compiled, where each would otherwise
    compile its own copy of them (about 10 s of CPU for a project with a worker, out of
    about 20 for its whole suite)."""
    run([*UV, "sync", "--quiet"], project, environment)
    archive = Path(run([*UV, "cache", "dir"], project, environment).strip()) / "archive-v0"
    new = [path for path in archive.glob("*") if path.name not in COMPILED_WHEELS]
    if not new:
        return
    # Once for all the test processes: the bytecode of a wheel is written by one of them.
    with COMPILING_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The interpreter the projects run on (UV_PYTHON) writes the bytecode they read;
        # what is compiled already is left as it is. A failure costs only the time saved:
        # some wheels hold sources for other Pythons, which nothing imports.
        compiling = [sys.executable, "-m", "compileall", "-q", *map(str, new)]
        subprocess.run(compiling, capture_output=True, check=False, timeout=600)
    COMPILED_WHEELS.update(path.name for path in new)
