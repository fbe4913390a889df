"""The container engine of the container tier (test_container.py), and local stand-ins for
the base images the generated Dockerfile names: no registry is reachable from the machines
the tier runs on, so nothing can be pulled.

Run as a script, as root (.ci/run does), to install and configure the engine and build the
stand-ins; the tests only check that it was done. Both are cached between runs in CACHE.

The engine is podman with runc (crun fails on these machines' cgroups), configured by files
of its own (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF) so that the machine's configuration
and images are left alone.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from subprocess import CompletedProcess

CACHE = Path(
    os.environ.get("CONTAINER_TIER_CACHE")
    or Path.home() / ".cache" / "python-service-template" / "container-tier"
)
ENVIRONMENT = {
    "CONTAINERS_CONF": str(CACHE / "containers.conf"),
    "CONTAINERS_STORAGE_CONF": str(CACHE / "storage.conf"),
}
PACKAGES = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}

# Every stand-in carries this label (its runtime images inherit it), saying what it stands in
# for and how it was made; RECIPE_LABEL's value changes when the recipe does, which rebuilds.
STAND_IN_LABEL = "python-service-template.test-stand-in"
RECIPE_LABEL = f"{STAND_IN_LABEL}.recipe"
RECIPE = "1"

DEBIAN_SUITE = "trixie"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What python:<version>-slim images offer the Dockerfile: the interpreter as `python` too,
# the CA certificates, and useradd/groupadd.
DEBIAN_PACKAGES = ("python3", "python-is-python3", "ca-certificates", "passwd")
# The official images' PATH and locale. UV_SYSTEM_CERTS: the build stage's uv downloads
# through this machine's TLS-intercepting proxy, whose authority is only in the system store
# (copied in below); uv otherwise trusts its own bundled roots alone.
PYTHON_STAND_IN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "UV_SYSTEM_CERTS": "1",
}


def podman(*args: str | Path, check: bool = True, timeout: float = 900) -> CompletedProcess[str]:
    """podman with the tier's configuration; output captured, in the error when it fails."""
    result = subprocess.run(
        ["podman", *args],
        env={**os.environ, **ENVIRONMENT},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(map(str, args))} failed:\n{result.stdout}{result.stderr}"
        )
    return result


def base_images(dockerfile: Path) -> list[str]:
    """The images a Dockerfile's stages start from, less its own stages, fully qualified as
    podman resolves a short name to Docker Hub."""
    stages: set[str] = set()
    images = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] != ["FROM"]:
            continue
        image = words[1]
        if len(words) >= 4 and words[2].upper() == "AS":
            stages.add(words[3])
        if image in stages or image == "scratch":
            continue
        if "/" not in image.split(":")[0]:
            image = f"docker.io/library/{image}"
        images.append(image)
    return images


def stand_in_problem(image: str) -> str | None:
    """Why image is not a usable stand-in, or None."""
    found = podman(
        "image",
        "inspect",
        "--format",
        f'{{{{index .Labels "{RECIPE_LABEL}"}}}}',
        image,
        check=False,
    )
    if found.returncode != 0:
        return f"no stand-in for {image}"
    if found.stdout.strip() != RECIPE:
        return f"{image} is not this recipe's stand-in (recipe {found.stdout.strip()!r})"
    return None


def problem(images: list[str]) -> str | None:
    """Why the tier cannot run with these base images here, or None: what tests check."""
    missing = [name for name in PACKAGES if not shutil.which(name)]
    if missing:
        return f"not installed: {', '.join(missing)}"
    if not Path(ENVIRONMENT["CONTAINERS_CONF"]).exists():
        return f"the engine is not configured ({ENVIRONMENT['CONTAINERS_CONF']} is missing)"
    for image in images:
        if reason := stand_in_problem(image):
            return reason
    return None


# Setting up (the script).


def install_engine() -> None:
    missing = [package for command, package in PACKAGES.items() if not shutil.which(command)]
    if missing:
        print(f"container-engine: installing {' '.join(missing)}", flush=True)
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=environment)


def configure() -> None:
    """The engine's own configuration files. Its default limits exceed what this machine lets
    a process set, so the containers get the machine's open-files limit and a bounded
    process count (runc refuses higher ones here). There is no systemd: cgroupfs, and events
    to a file."""
    CACHE.mkdir(parents=True, exist_ok=True)
    _soft, files = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = 65536 if files == resource.RLIM_INFINITY else min(files, 65536)
    Path(ENVIRONMENT["CONTAINERS_CONF"]).write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={files}:{files}", "nproc=32768:32768"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    # overlay: vfs copies every layer in full and makes each build many times slower.
    Path(ENVIRONMENT["CONTAINERS_STORAGE_CONF"]).write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{CACHE / "storage"}"\n'
        f'runroot = "{CACHE / "run"}"\n'
    )


def changes(environment: dict[str, str], labels: dict[str, str]) -> list[str]:
    return [
        *(f"--change=ENV {name}={value}" for name, value in environment.items()),
        *(f'--change=LABEL {name}="{value}"' for name, value in labels.items()),
    ]


def build_python_stand_in(image: str) -> None:
    """python:<version>-slim-<suite>: a minimal Debian root with Debian's own Python, which must
    have the image's minor version."""
    tag = image.rpartition(":")[2]
    version, _, variant = tag.partition("-")
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
        # they survive any later update-ca-certificates in a build.
        local = Path("/usr/local/share/ca-certificates")
        for certificate in local.glob("*.crt") if local.is_dir() else []:
            shutil.copy2(certificate, root / local.relative_to("/") / certificate.name)
        subprocess.run(
            ["chroot", root, "update-ca-certificates"], check=True, stdout=subprocess.DEVNULL
        )
        for cache in ("var/lib/apt/lists", "var/cache/apt"):
            for path in (root / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        archive = Path(scratch) / "root.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", root, "-cf", archive, "."], check=True)
        labels = {
            STAND_IN_LABEL: f"test stand-in for {image}: Debian {DEBIAN_SUITE} minbase with "
            f"Debian's Python {debian_python}",
            RECIPE_LABEL: RECIPE,
        }
        podman(
            "import",
            *changes(PYTHON_STAND_IN_ENV, labels),
            '--change=CMD ["python3"]',
            archive,
            image,
        )


def build_uv_stand_in(image: str) -> None:
    """ghcr.io/astral-sh/uv:<version>: the uv and uvx binaries, from the uv wheel these tests
    run with (requirements.txt pins the same version as the Dockerfile)."""
    from uv import find_uv_bin

    version = image.rpartition(":")[2]
    uv = Path(find_uv_bin())
    found = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True)
    if found.stdout.split()[1] != version:
        raise SystemExit(f"container-engine: {image} needs uv {version}; this is {found.stdout}")
    with tempfile.TemporaryDirectory(dir=CACHE) as context:
        for binary in (uv, uv.with_name("uvx")):
            shutil.copy2(binary, Path(context) / binary.name)
        (Path(context) / "Containerfile").write_text(
            "FROM scratch\n"
            f'LABEL {STAND_IN_LABEL}="test stand-in for {image}: the binaries of the uv '
            f'{version} wheel" {RECIPE_LABEL}="{RECIPE}"\n'
            "COPY uv uvx /\n"
        )
        podman("build", "--pull=never", "--format", "docker", "-t", image, context)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from harness import bake

    install_engine()
    configure()
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}")
    print(f"container-engine: podman with {info.stdout.strip()}", flush=True)
    with tempfile.TemporaryDirectory() as output:
        # The default bake names the images (python_version 3.13: Debian trixie's Python).
        images = base_images(bake(Path(output)) / "Dockerfile")
    for image in images:
        if reason := stand_in_problem(image):
            print(f"container-engine: building a stand-in ({reason})", flush=True)
            if "/astral-sh/uv:" in image:
                build_uv_stand_in(image)
            elif "/library/python:" in image:
                build_python_stand_in(image)
            else:
                raise SystemExit(f"container-engine: no recipe for a stand-in for {image}")
    python = next(image for image in images if "/library/python:" in image)
    # The engine runs a container as the tier does, or this fails here, loudly.
    podman("run", "--rm", "--read-only", "--cap-drop=ALL", "--network=host", python, "true")
    # Superseded images of earlier runs (the tier rebuilds under the same tags).
    podman("image", "prune", "--force")
    print(f"container-engine: ready ({', '.join(images)})", flush=True)


if __name__ == "__main__":
    main()
