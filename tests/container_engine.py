"""The container engine of the container tier (test_container.py), and local stand-ins for
the base images the generated Dockerfile names: no registry is reachable from the machines
the tier runs on, so nothing can be pulled.

Run as a script, as root (.ci/run does), to install and start the engine and build the
stand-ins; the tests only check that it was done. All of it is cached between runs in CACHE.

The engine is Debian's Docker daemon, started by hand with its own data root, socket and
client configuration, so that a Docker the machine may run is left alone. The Dockerfile
needs BuildKit (relative bind-mount targets, cache mounts): Debian 12's Docker client has
no BuildKit front end and its podman's builder rejects relative mount targets, so the
client's buildx plugin comes from Debian 13's docker-buildx package, unpacked into CACHE.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import CompletedProcess

CACHE = Path(
    os.environ.get("CONTAINER_TIER_CACHE")
    or Path.home() / ".cache" / "python-service-template" / "container-tier"
)
SOCKET = Path("/run/python-service-template-docker.sock")
ENVIRONMENT = {
    "DOCKER_HOST": f"unix://{SOCKET}",
    "DOCKER_CONFIG": str(CACHE / "docker-config"),
}
BUILDX = CACHE / "docker-config" / "cli-plugins" / "docker-buildx"
# Commands the tier needs, by the Debian package that has them.
PACKAGES = {"dockerd": "docker.io", "docker": "docker.io", "debootstrap": "debootstrap"}

# Every stand-in carries this label (its runtime images inherit it), saying what it stands in
# for and how it was made; RECIPE_LABEL's value changes when the recipe does, which rebuilds.
STAND_IN_LABEL = "python-service-template.test-stand-in"
RECIPE_LABEL = f"{STAND_IN_LABEL}.recipe"
RECIPE = "4"

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "trixie"
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


def docker(*args: str | Path, check: bool = True, timeout: float = 900) -> CompletedProcess[str]:
    """The docker client of the tier's engine; output captured, and in the error."""
    result = subprocess.run(
        ["docker", *args],
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


def problem(images: list[str]) -> str | None:
    """Why the tier cannot run with these base images here, or None: what the tests check."""
    missing = [name for name in PACKAGES if not shutil.which(name)]
    if missing:
        return f"not installed: {', '.join(missing)}"
    if not BUILDX.exists():
        return f"no buildx plugin at {BUILDX}"
    if docker("version", check=False, timeout=30).returncode != 0:
        return f"no Docker daemon answers on {SOCKET}"
    for image in images:
        if reason := stand_in_problem(image):
            return reason
    return None


# Setting up (the script).


def log(message: str) -> None:
    print(f"container-engine: {message}", flush=True)


def install_engine() -> None:
    missing = sorted({package for name, package in PACKAGES.items() if not shutil.which(name)})
    if missing:
        log(f"installing {' '.join(missing)}")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=environment)


def install_buildx() -> None:
    """Debian 13's docker-buildx, downloaded with an apt state of its own (the machine's
    package sources and lists stay as they are) and unpacked as the client's plugin."""
    if BUILDX.exists():
        return
    log(f"installing buildx from Debian {DEBIAN_SUITE}'s docker-buildx")
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
        subprocess.run([*apt, "download", "docker-buildx"], check=True, cwd=state)
        (package,) = state.glob("docker-buildx_*.deb")
        subprocess.run(["dpkg-deb", "-x", package, state / "unpacked"], check=True)
        BUILDX.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(state / "unpacked/usr/libexec/docker/cli-plugins/docker-buildx", BUILDX)


def start_daemon() -> None:
    """dockerd with its own roots, unless it answers already. There is no systemd: cgroupfs."""
    if docker("version", check=False, timeout=30).returncode == 0:
        return
    log("starting dockerd")
    logfile = CACHE / "dockerd.log"
    with logfile.open("ab") as output:
        subprocess.Popen(
            [
                "dockerd",
                f"--data-root={CACHE / 'docker'}",
                "--exec-root=/run/python-service-template-docker",
                "--pidfile=/run/python-service-template-docker.pid",
                f"--host=unix://{SOCKET}",
                "--exec-opt=native.cgroupdriver=cgroupfs",
                # The tier's containers and builds use the host's network: no bridge, and the
                # machine's firewall rules stay as they are.
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    for _ in range(60):
        if docker("version", check=False, timeout=30).returncode == 0:
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


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from harness import bake

    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    install_engine()
    install_buildx()
    start_daemon()
    with tempfile.TemporaryDirectory() as output:
        # The default bake names the images (python_version 3.13: Debian trixie's Python).
        images = base_images(bake(Path(output)) / "Dockerfile")
    for image in images:
        if reason := stand_in_problem(image):
            log(f"building a stand-in ({reason})")
            if image.startswith("ghcr.io/astral-sh/uv:"):
                build_uv_stand_in(image)
            elif image.startswith("python:"):
                build_python_stand_in(image)
            else:
                raise SystemExit(f"container-engine: no recipe for a stand-in for {image}")
    # The engine runs a container as the tier does, or this fails here, loudly.
    python = next(image for image in images if image.startswith("python:"))
    docker("run", "--rm", "--read-only", "--cap-drop=ALL", "--network=host", python, "true")
    # Images that later builds under the same tags superseded.
    docker("image", "prune", "--force")
    log(f"ready in {time.monotonic() - started:.0f}s: {', '.join(images)}")


if __name__ == "__main__":
    main()
