"""A real Prometheus Alertmanager for the end-to-end tests.

Debian's ``prometheus-alertmanager`` package is installed on first use (this
machine, and CI, are Debian with root and the Debian archive); each
:class:`Alertmanager` is then its own process on a free 127.0.0.1 port, with
its own config file and ``--storage.path`` in a temporary folder and
clustering off, stopped (and waited for) by :meth:`Alertmanager.stop`.
Nothing here depends on port 9093 or on the package's own service.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any, Self

PACKAGE = "prometheus-alertmanager"
BINARY = "/usr/bin/prometheus-alertmanager"
SERVICE = "prometheus-alertmanager"
READY_TIMEOUT = 20.0


class InstallError(RuntimeError):
    """The Alertmanager binary is missing and could not be installed."""


def find_binary(binary: str = BINARY) -> str | None:
    if os.access(binary, os.X_OK):
        return binary
    return shutil.which(os.path.basename(binary))


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # wait for a dpkg lock held by someone else instead of failing at once
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=300", *args]
    try:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"`{' '.join(cmd)}` did not finish in {exc.timeout:g}s") from None


def ensure_installed() -> str:
    """The path of Debian's Alertmanager binary, installing the package if it is missing."""
    return ensure_package(PACKAGE, BINARY, SERVICE)


def ensure_package(package: str, binary: str, service: str) -> str:
    """The path of a Debian package's ``binary``, installing ``package`` if it is missing.

    Fast when it is already installed (one ``access`` call).  After installing,
    the package's own ``service`` is stopped and disabled: the tests start their own
    servers, and none may be left listening on the package's port.
    """
    found = find_binary(binary)
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise InstallError(f"{binary} is missing and apt-get is not available to install "
                           f"{package} (the tests need a Debian machine)")
    if os.geteuid() != 0:
        raise InstallError(f"{binary} is missing; installing it needs root: run "
                           f"`apt-get install -y {package}` once, then the tests again")
    install = ("install", "-y", "--no-install-recommends", package)
    done = _apt(*install)
    if done.returncode != 0:  # stale package lists: refresh them once and retry
        update = _apt("update")
        done = _apt(*install)
        if done.returncode != 0:
            raise InstallError(
                f"`apt-get install -y {package}` failed (exit {done.returncode}); "
                f"apt-get update exit {update.returncode}:\n{_tail(update.stderr)}\n"
                f"{_tail(done.stdout)}\n{_tail(done.stderr)}")
    found = find_binary(binary)
    if found is None:
        raise InstallError(f"{package} installed but {binary} is not there")
    stop_packaged_service(found, service)
    return found


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def packaged_daemons(binary: str) -> list[int]:
    """PIDs of running processes whose executable is ``binary``."""
    target = os.path.realpath(binary)
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if exe == target:
            pids.append(int(entry.name))
    return pids


def stop_packaged_service(binary: str, service: str = SERVICE) -> None:
    """Stop (and keep from autostarting) the server the package's postinst may have
    started.  Only called right after this session installed the package, so any
    process running the binary then is the package's service."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "disable", "--now", service],
                       capture_output=True, timeout=60, check=False)
    elif shutil.which("service"):
        subprocess.run(["service", service, "stop"], capture_output=True, timeout=60,
                       check=False)
    pids = packaged_daemons(binary)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while packaged_daemons(binary) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = packaged_daemons(binary)
    if left:
        raise InstallError(f"the packaged {service} is still running after install "
                           f"(pids {left}); stop it with `service {service} stop`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_time(value: str) -> datetime:
    """Alertmanager's RFC 3339 timestamps (up to nanoseconds) as aware datetimes."""
    m = re.fullmatch(r"([^.]+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    head, frac, zone = m.groups()
    frac = f".{frac[:6].ljust(6, '0')}" if frac else ""
    return datetime.fromisoformat(head + frac + ("+00:00" if zone == "Z" else zone))


class ServerProcess:
    """One packaged Prometheus-family server (Alertmanager, Prometheus) as its own
    process on a free 127.0.0.1 port, with its config (a dict: JSON is valid YAML) and
    its data in ``workdir``; :meth:`stop` stops it and waits for it."""

    NAME = ""
    CONFIG_FILE = ""
    READY_POLL = 0.05
    READY_WAIT = READY_TIMEOUT
    STOP_WAIT = 10.0

    def __init__(self, binary: str, config: dict[str, Any], workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / self.CONFIG_FILE
        self.config_file.write_text(json.dumps(config, indent=2))
        self.log_file = workdir / f"{self.NAME.lower()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arguments(self) -> list[str]:
        """The command line after the binary, for ``self.port``."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start on a free port and wait for ``/-/ready``; a port taken in between is retried."""
        for _ in range(3):
            self.port = free_port()
            with open(self.log_file, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, *self.arguments()],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"{self.NAME} did not become ready on 127.0.0.1:{self.port}:\n"
                           f"{self.log()}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.READY_WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(self.READY_POLL)
        return False

    def log(self) -> str:
        return _tail(self.log_file.read_text(errors="replace"), 40) if self.log_file.exists() \
            else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.STOP_WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


class Alertmanager(ServerProcess):
    """One Alertmanager process with the given config."""

    NAME = "Alertmanager"
    CONFIG_FILE = "alertmanager.yml"

    def arguments(self) -> list[str]:
        return [f"--config.file={self.config_file}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no clustering: no gossip port, no settle
                "--log.level=info"]

    # -- API v2 ---------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        url = f"{self.url}/api/v2{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (e.g. ``active="true"``, ``filter=['model="eta"']``)."""
        return list(self.get("/alerts", **params))


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
