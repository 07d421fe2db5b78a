"""Build and run the Dockerfile for real with Debian's podman, offline.

No registry is reachable here, so the base image is made from Debian packages
(``mmdebstrap --variant=minbase --include=python3,python3-venv bookworm``) and
imported with ``podman import``; pip inside the build cannot reach PyPI, so the
wheels are built on the host (``pip wheel``, which may use PyPI) into the build
context's ``wheelhouse/`` and installed with ``--no-index --find-links``.

``podman``, ``runc`` and ``mmdebstrap`` are installed with apt on first use (as
tests/integration/alertmanager.py installs Alertmanager).  podman asks the
runtime for an open-files limit (1048576) above this machine's hard limit
(20000 here), which runc refuses ("error setting rlimit type 7: operation not
permitted"), so every podman command passes 1024/1024 ``nofile`` and ``nproc``
ulimits, and names runc (crun, podman's first choice, is not installed).

Cached across runs in :data:`CACHE` (``DRIFTWATCH_TEST_CACHE`` overrides it): the
base tarball and image, and the wheelhouse (keyed by a hash of pyproject.toml).
The image build reuses podman's layer cache: the dependency layer is rebuilt only
when pyproject.toml changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("DRIFTWATCH_TEST_CACHE", "/var/tmp/driftwatch-test-cache"))
PACKAGES = ("podman", "runc", "mmdebstrap")
BASE_IMAGE = "localhost/driftwatch-test-base:bookworm"
IMAGE = "localhost/driftwatch:test"
RUNTIME = ["--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "monitor",
                 "alerts", "detectors", "deploy/container", "wheelhouse/README.md")


class ContainerError(RuntimeError):
    """A step of getting the image failed; the message says which, with its output."""


def _tail(text: str, n: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def run(*cmd: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except subprocess.TimeoutExpired:
        raise ContainerError(f"`{' '.join(cmd)}` did not finish in {timeout:g}s") from None
    if check and done.returncode != 0:
        raise ContainerError(f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n"
                             f"{_tail(done.stdout)}\n{_tail(done.stderr)}")
    return done


def podman(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run("podman", *args, timeout=timeout, check=check)


def ensure_packages(binaries: dict[str, str]) -> None:
    """Install the Debian package of every missing binary (``{binary: package}``)."""
    missing = sorted({pkg for exe, pkg in binaries.items() if shutil.which(exe) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ContainerError(f"missing {', '.join(missing)}: run `apt-get install -y "
                             f"{' '.join(missing)}` once (needs root on Debian)")
    apt = ("apt-get", "-o", "DPkg::Lock::Timeout=300")
    done = run(*apt, "install", "-y", "--no-install-recommends", *missing, timeout=900,
               check=False)
    if done.returncode != 0:  # stale package lists: refresh once and retry
        run(*apt, "update", timeout=900, check=False)
        run(*apt, "install", "-y", "--no-install-recommends", *missing, timeout=900)


def ensure_tools() -> None:
    ensure_packages({exe: exe for exe in PACKAGES})


def ensure_base() -> str:
    """The Debian base image (python3 + venv), from the cache when it is there."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / "bookworm-python3.tar"
    if not tarball.is_file():
        # mmdebstrap picks its output format from the name: keep ".tar" at the end
        partial = CACHE / "partial-bookworm-python3.tar"
        for stale in (partial, tarball):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink(missing_ok=True)
        run("mmdebstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm",
            str(partial), timeout=900)
        partial.rename(tarball)
    podman("import", str(tarball), BASE_IMAGE)
    return BASE_IMAGE


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One process at a time builds the cached base, wheels and image: the suite runs
    on two workers, and each may set up the container tests' module."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_wheels() -> Path:
    """Every dependency's wheel (and setuptools, the build backend), built on the host."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    wheels = CACHE / f"wheelhouse-{key}"
    if not wheels.exists():
        partial = CACHE / f"wheelhouse-{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        run(sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(partial),
            f"{REPO}[postgres]", "setuptools>=68", timeout=900)
        for built in partial.glob("driftwatch-*.whl"):
            built.unlink()  # the image builds driftwatch from the context's source
        partial.rename(wheels)
    return wheels


def build_context(dest: Path, wheels: Path) -> Path:
    """The files the Dockerfile needs (the .dockerignore allow-list) and the wheels."""
    for name in CONTEXT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    for wheel in wheels.iterdir():
        try:
            os.link(wheel, dest / "wheelhouse" / wheel.name)  # same filesystem: no copy
        except OSError:
            shutil.copy2(wheel, dest / "wheelhouse" / wheel.name)
    return dest


def build_image(context: Path) -> str:
    podman("build", *RUNTIME, *ULIMITS, "--format", "docker", "--network", "host",
           "--build-arg", f"BASE_IMAGE={ensure_base()}",
           "--build-arg", "PIP_OPTIONS=--no-index --find-links=/wheelhouse",
           "--tag", IMAGE, str(context), timeout=1200)
    return IMAGE
