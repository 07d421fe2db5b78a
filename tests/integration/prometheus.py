"""A real Prometheus (Debian's ``prometheus`` package, which ships ``promtool`` too)
for the dashboard and rule tests.

The package is installed on first use the way :mod:`tests.integration.alertmanager`
installs Alertmanager; each :class:`Prometheus` is its own process on a free
127.0.0.1 port with its own config and TSDB in a temporary folder, stopped (and
waited for) by :meth:`Prometheus.stop`.  Nothing here uses port 9090 or the
package's own service.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.alertmanager import _tail, ensure_package, free_port

PACKAGE = "prometheus"
BINARY = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
SERVICE = "prometheus"
READY_TIMEOUT = 30.0


def ensure_installed() -> tuple[str, str]:
    """The paths of Debian's ``prometheus`` and ``promtool``, installed if missing."""
    prometheus = ensure_package(PACKAGE, BINARY, SERVICE)
    promtool = str(Path(prometheus).with_name("promtool"))
    return prometheus, promtool


class Prometheus:
    """One Prometheus scraping ``targets`` every ``interval`` (job ``job``), evaluating
    ``rule_files`` as often."""

    def __init__(self, binary: str, workdir: Path, targets: list[str], *,
                 job: str = "driftwatch", interval: str = "1s",
                 rule_files: list[str] | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / "prometheus.yml"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": list(rule_files or []),
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }
        self.config_file.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.log_file = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        for _ in range(3):
            self.port = free_port()
            with open(self.log_file, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, f"--config.file={self.config_file}",
                     f"--storage.tsdb.path={self.workdir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}",
                     "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"Prometheus did not become ready on 127.0.0.1:{self.port}:\n"
                           f"{self.log()}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def api(self, path: str, **params: Any) -> Any:
        """``/api/v1/<path>``'s ``data``; raises with Prometheus' error on a bad query."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            raise AssertionError(f"{path} {params}: {body.get('error', exc)}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return list(self.api("query", **params)["result"])

    def query_range(self, expr: str, start: float, end: float,
                    step: float = 1.0) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=start, end=end,
                             step=step)["result"])

    def log(self) -> str:
        return _tail(self.log_file.read_text(errors="replace"), 40) \
            if self.log_file.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
