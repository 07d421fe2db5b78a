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
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.alertmanager import ServerProcess, ensure_package

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


class Prometheus(ServerProcess):
    """One Prometheus scraping ``targets`` every ``interval`` (job ``job``), evaluating
    ``rule_files`` as often."""

    NAME = "Prometheus"
    CONFIG_FILE = "prometheus.yml"
    READY_POLL = 0.1
    READY_WAIT = READY_TIMEOUT
    STOP_WAIT = 15.0

    def __init__(self, binary: str, workdir: Path, targets: list[str], *,
                 job: str = "driftwatch", interval: str = "1s",
                 rule_files: list[str] | None = None) -> None:
        super().__init__(binary, {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": list(rule_files or []),
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }, workdir)

    def arguments(self) -> list[str]:
        return [f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h", "--log.level=warn"]

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
