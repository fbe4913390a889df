"""Validate every answer before anything is generated.

This is the template's one rule set. Cookiecutter renders this file with the answers,
however it was called (prompts, --no-input, --config-file, extra context, pytest-cookies,
cruft), so every path is checked the same way. All violations are reported at once, each
naming the option, the value and what would be valid; then the hook exits 1 and
cookiecutter removes the half-made project directory. The hook raises nothing itself:
cookiecutter logs its own traceback after a failed hook, so the message comes first and
stands alone.

The template's tests import this module to enumerate the valid combinations, so the
rendered answers are only read under ``__main__``.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

Answers = Mapping[str, Any]


class Violation(NamedTuple):
    option: str
    value: Any
    expected: str

    def __str__(self) -> str:
        return f"{self.option} = {self.value!r}: {self.expected}"


# A Kubernetes object name and an image name: RFC 1123 label.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_LABEL_MAX = 63
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# PEP 440 public versions: release, optional pre-, post- and dev-release.
VERSION = re.compile(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?")
# An importable name: an ASCII identifier (keywords and shadowing are checked apart).
PACKAGE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A Backstage catalog entity reference, [kind:][namespace/]name, as catalog-info.yaml uses it.
ENTITY_REF = re.compile(
    r"([A-Za-z]+:)?([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[A-Za-z0-9]+([-_.][A-Za-z0-9]+)*"
)
OPTIONAL_ENTITY_REF = re.compile(f"({ENTITY_REF.pattern})?")
ENTITY_NAME_MAX = 63

# The rules that are a pattern, by option: the registry entry (template.yaml) gives its form
# the same ones, and a test keeps the two equal.
PATTERNS = {
    "project_slug": DNS_LABEL,
    "package_name": PACKAGE,
    "author_email": EMAIL,
    "version": VERSION,
    "owner": ENTITY_REF,
    "system": OPTIONAL_ENTITY_REF,
}

# The facts of every choice, by option (framework, orm, database, worker, broker, ci, license)
# and value, and of the parts every service has: the table the project's files look their
# facts up in. It is a file of the project skeleton whose name is a Jinja comment, so
# cookiecutter writes no file for it (the string is split so that cookiecutter, which renders
# this hook, leaves it as it is).
FACTS_FILE = "{" + "#choices.jinja#}"
FACT_TABLES = {
    "framework": "FRAMEWORKS",
    "orm": "ORMS",
    "database": "DATABASES",
    "worker": "WORKERS",
    "broker": "BROKERS",
    "ci": "CIS",
    "license": "LICENSES",
    # Not an option: the parts every service has (metrics, error reports, tracing).
    "part": "PARTS",
}
Facts = Mapping[str, Mapping[str, Any]]

# Import names of the project's own layout and tools, besides those the choices bring.
LAYOUT_MODULES = frozenset({"pytest", "ruff", "tests", "migrations", "manage"})


def skeleton_of(template: Path) -> Path:
    """The project skeleton: the template's one directory named after a cookiecutter variable,
    as cookiecutter finds it."""
    [skeleton] = [p for p in template.iterdir() if p.is_dir() and "cookiecutter." in p.name]
    return skeleton


def facts_of(template: Path) -> dict[str, Any]:
    """The facts table of a template, read as data with the Jinja cookiecutter runs on."""
    from jinja2 import Environment

    source = (skeleton_of(template) / FACTS_FILE).read_text()
    module = Environment().from_string(source).module
    return {option: getattr(module, table) for option, table in FACT_TABLES.items()}


def dependency_modules(facts: Facts) -> frozenset[str]:
    """Import names a generated project depends on, in any combination, plus the names its
    own layout uses. A package named like one of them would shadow it."""
    chosen = {
        module
        for table in facts.values()
        for value in table.values()
        for module in value.get("modules", ())
    }
    return LAYOUT_MODULES | chosen


# Free-text answers; the rules below also read them as text, so a number given in a
# config file is judged by its digits rather than crashing the hook.
TEXT_OPTIONS = (
    "project_name",
    "project_slug",
    "package_name",
    "description",
    "author_name",
    "author_email",
    "version",
    "owner",
    "system",
)


def check_text(answers: Answers, facts: Facts) -> Iterator[Violation]:
    for option in TEXT_OPTIONS:
        value = answers[option]
        if not isinstance(value, str | int | float) or any(c in str(value) for c in "\r\n"):
            yield Violation(option, value, "must be a single line of text")
    if not str(answers["project_name"]).strip():
        yield Violation("project_name", answers["project_name"], "must not be empty")


def check_slug(answers: Answers, facts: Facts) -> Iterator[Violation]:
    slug = str(answers["project_slug"])
    if not DNS_LABEL.fullmatch(slug) or len(slug) > DNS_LABEL_MAX:
        yield Violation(
            "project_slug",
            slug,
            "must be a DNS-1123 label (it names the image and Kubernetes objects): "
            "lowercase letters, digits and '-', starting and ending with a letter or "
            f"digit, at most {DNS_LABEL_MAX} characters, such as 'my-service'",
        )


def check_slug_starts_with_a_letter(answers: Answers, facts: Facts) -> Iterator[Violation]:
    slug = str(answers["project_slug"])
    if DNS_LABEL.fullmatch(slug) and not slug[0].isalpha():
        yield Violation(
            "project_slug",
            slug,
            "must start with a letter: it names the Kubernetes Service, an RFC 1035 label",
        )


def check_package(answers: Answers, facts: Facts) -> Iterator[Violation]:
    package = str(answers["package_name"])
    if not PACKAGE.fullmatch(package) or keyword.iskeyword(package):
        yield Violation(
            "package_name",
            package,
            "must be a Python identifier that is not a keyword: ASCII letters, digits "
            "and '_', not starting with a digit, such as 'my_service'",
        )
    elif package in sys.stdlib_module_names:
        yield Violation(
            "package_name",
            package,
            "must not shadow a standard library module; choose another name, "
            f"such as '{package}_service'",
        )
    elif package in dependency_modules(facts):
        yield Violation(
            "package_name",
            package,
            "must not shadow a module the generated project uses; choose another name, "
            f"such as '{package}_service'",
        )


def check_email(answers: Answers, facts: Facts) -> Iterator[Violation]:
    email = str(answers["author_email"])
    if not EMAIL.fullmatch(email):
        yield Violation(
            "author_email", email, "must look like an email address, such as 'you@example.com'"
        )


def check_version(answers: Answers, facts: Facts) -> Iterator[Violation]:
    version = str(answers["version"])
    if not VERSION.fullmatch(version):
        yield Violation(
            "version", version, "must be a PEP 440 version, such as '0.1.0' or '1.0.0rc1'"
        )


def check_worker_has_data(answers: Answers, facts: Facts) -> Iterator[Violation]:
    worker = answers.get("worker", "none")
    if worker != "none" and answers.get("database") == "none":
        *others, last = [name for name in facts["database"] if name != "none"]
        yield Violation(
            "worker",
            worker,
            "must be none without a database, since its example task processes the "
            f"stored items; choose database {', '.join(others)} or {last}, or worker none",
        )


def check_broker_serves_worker(answers: Answers, facts: Facts) -> Iterator[Violation]:
    """A worker runs on the brokers its requirements are given for."""
    workers, brokers = facts["worker"], facts["broker"]
    worker, broker = answers.get("worker"), answers.get("broker")
    if worker == "none" or worker not in workers or broker not in brokers:
        return  # nothing to serve, or a value check_choices refuses
    served = list(workers[worker]["requirements"])
    if broker not in served:
        others = [name for name, w in workers.items() if broker in w["requirements"]]
        others.remove("none")
        yield Violation(
            "broker",
            broker,
            f"must be {' or '.join(served)} for worker '{worker}', which runs on "
            f"{' or '.join(brokers[b]['name'] for b in served)} only; choose broker "
            f"{' or '.join(served)}, or worker {' or '.join(others)} to use "
            f"{brokers[broker]['name']}",
        )


def check_catalog(answers: Answers, facts: Facts) -> Iterator[Violation]:
    for option, pattern in (("owner", ENTITY_REF), ("system", OPTIONAL_ENTITY_REF)):
        value = str(answers[option])
        name = value.rpartition("/")[2].rpartition(":")[2]
        if not pattern.fullmatch(value) or len(name) > ENTITY_NAME_MAX:
            yield Violation(
                option,
                value,
                "must be a catalog entity reference, [kind:][namespace/]name: a name of "
                f"letters and digits joined by '-', '_' or '.', at most {ENTITY_NAME_MAX} "
                "characters, such as 'platform-team' or 'group:default/platform-team'"
                + (", or empty for none" if option == "system" else ""),
            )


RULES: tuple[Callable[[Answers, Facts], Iterable[Violation]], ...] = (
    check_text,
    check_slug,
    check_slug_starts_with_a_letter,
    check_package,
    check_email,
    check_version,
    check_worker_has_data,
    check_broker_serves_worker,
    check_catalog,
)


def check_choices(answers: Answers, choices: Mapping[str, list[str]]) -> Iterator[Violation]:
    """Every choice answer is one of its listed values (cookiecutter.json is the one list)."""
    for option, allowed in choices.items():
        if answers.get(option) not in allowed:
            yield Violation(option, answers.get(option), f"must be one of {', '.join(allowed)}")


def choices_of(template_context: Mapping[str, Any]) -> dict[str, list[str]]:
    """The choice options of cookiecutter.json: the ones whose default is a list."""
    return {
        option: value
        for option, value in template_context.items()
        if isinstance(value, list) and not option.startswith("_")
    }


def template_directory(answers: Answers) -> Path | None:
    """Where cookiecutter.json is: where cookiecutter says the template is, else the working
    directory of the process running this hook (cookiecutter's generate_files, which cruft
    calls without saying where, runs hooks from the template's directory)."""
    repo = Path(str(answers.get("_repo_dir") or ""))
    # A relative one is as the user typed it, not from here; cookiecutter's working directory
    # is the template's then too.
    if repo.is_absolute():
        return repo
    try:
        return Path(f"/proc/{os.getppid()}/cwd").readlink()
    except OSError:
        return None


def template_choices(answers: Answers, template_context: Mapping[str, Any]) -> dict[str, list[str]]:
    """The choice lists of cookiecutter.json, read from the template; else from the context
    cookiecutter passed (on --replay that holds answers, not lists)."""
    directory = template_directory(answers)
    if directory and (directory / "cookiecutter.json").is_file():
        return choices_of(json.loads((directory / "cookiecutter.json").read_text()))
    return choices_of(template_context)


# Cookiecutter applies a user config's default_context in order and, at the first choice value
# that is not one of the choices (`framework: Flask`, or `python_version: 3.12`, which YAML
# reads as a number), only warns and leaves that key and every key after it at the template's
# defaults: the bake would silently differ from what the config asked. The answers cannot show
# it, so the hook reads the config again, where the command it was given can be known: the
# cookiecutter command or `cruft create` that runs this hook (its parent process, on Linux).
# A replay and `cruft update` take every answer from elsewhere; the API passes no command line.
COMMANDS_THAT_READ_DEFAULTS = {"cookiecutter": (), "cruft": ("create",)}
REPLAY_OPTIONS = ("--replay", "--replay-file")
USER_CONFIG = Path("~/.cookiecutterrc")


def parent_arguments(pid: int) -> list[str] | None:
    """The command line of a process, where the platform shows it."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return [argument.decode(errors="replace") for argument in arguments if argument]


def command_options(arguments: list[str]) -> list[str] | None:
    """The options after the program's name, if the program reads a config's defaults."""
    for index, argument in enumerate(arguments):
        name = Path(argument).name
        after_interpreter = index == 0 or not arguments[index - 1].startswith("-")
        if name in COMMANDS_THAT_READ_DEFAULTS and (
            after_interpreter or arguments[index - 1] == "-m"
        ):
            options = arguments[index + 1 :]
            subcommands = COMMANDS_THAT_READ_DEFAULTS[name]
            if subcommands and not (options and options[0] in subcommands):
                return None
            return options
    return None


def option_value(options: list[str], name: str) -> str | None:
    for index, option in enumerate(options):
        if option == name and index + 1 < len(options):
            return options[index + 1]
        if option.startswith(f"{name}="):
            return option.partition("=")[2]
    return None


def config_file_read(options: list[str], environment: Mapping[str, str]) -> Path | None:
    """The user config these options make cookiecutter read (as cookiecutter.config finds it).
    A relative path is taken from where the command was started, as the shell's PWD tells:
    cookiecutter has moved into the template by the time its hooks run."""
    if "--default-config" in options or "-d" in options:
        return None
    given = option_value(options, "--config-file") or environment.get("COOKIECUTTER_CONFIG")
    if given:
        return Path(environment.get("PWD", ".")) / Path(given).expanduser()
    user_config = USER_CONFIG.expanduser()
    return user_config if user_config.is_file() else None


def config_defaults(config: Path) -> Mapping[str, Any]:
    from cookiecutter.config import get_config  # the parser cookiecutter itself used

    try:
        return get_config(str(config)).get("default_context") or {}
    except Exception:  # cookiecutter has already reported a config it cannot read
        return {}


def check_config_defaults(
    config: Path, defaults: Mapping[str, Any], choices: Mapping[str, list[str]]
) -> Iterator[Violation]:
    options = list(defaults)
    for position, (option, value) in enumerate(defaults.items()):
        if option in choices and value not in choices[option]:
            as_text = f' (a number there: write "{value}")' if str(value) in choices[option] else ""
            dropped = ", ".join(options[position + 1 :])
            yield Violation(
                option,
                value,
                f"in default_context of {config}, must be exactly one of "
                f"{', '.join(choices[option])}{as_text}; cookiecutter ignored it"
                + (f" and the defaults after it ({dropped})" if dropped else ""),
            )


def config_violations(choices: Mapping[str, list[str]]) -> list[Violation]:
    """What is wrong with the defaults of the user config the running command read."""
    arguments = parent_arguments(os.getppid())
    options = command_options(arguments) if arguments else None
    if options is None or any(option in REPLAY_OPTIONS for option in options):
        return []
    config = config_file_read(options, os.environ)
    if config is None or not config.is_file():
        return []
    return list(check_config_defaults(config, config_defaults(config), choices))


def violations(answers: Answers, choices: Mapping[str, list[str]], facts: Facts) -> list[Violation]:
    found = list(check_choices(answers, choices))
    for rule in RULES:
        found.extend(rule(answers, facts))
    return found


def report(found: list[Violation]) -> str:
    count = f"{len(found)} answer{'s are' if len(found) > 1 else ' is'} invalid"
    lines = [f"Cannot generate the project: {count}."]
    lines += [f"  - {violation}" for violation in found]
    lines.append("Nothing was generated. Run again with valid answers.")
    return "\n".join(lines)


def main(answers: Answers, template_context: Mapping[str, Any]) -> int:
    choices = template_choices(answers, template_context)
    template = template_directory(answers)
    if template is None:
        print("Cannot generate the project: the template's directory is unknown.", file=sys.stderr)
        return 1
    found = config_violations(choices) + violations(answers, choices, facts_of(template))
    if found:
        print(report(found), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Rendered by cookiecutter; `_cookiecutter` holds cookiecutter.json as read, with the
    # choice lists, when cookiecutter prompted. Raw strings: JSON escapes must reach
    # json.loads untouched.
    ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")
    TEMPLATE_CONTEXT = json.loads(r"""{{ _cookiecutter | default({}) | tojson }}""")
    sys.exit(main(ANSWERS, TEMPLATE_CONTEXT))
