"""JSON lines file: each alert's contract object (``Alert.to_json()``) on one line.

Options: ``path`` (required; parent directories are created).  A write error
(disk full, permissions) is retriable: the alert stays in the outbox.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

import orjson

from alerts.model import Alert
from alerts.receivers.base import DeliveryResult, GroupInfo, required_str


class FileNotifier:
    name = "file"

    def __init__(self, options: Mapping[str, object], receiver: str = "") -> None:
        self.path = Path(required_str(options, "path", receiver, self.name))
        self._lock = threading.Lock()

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        data = b"".join(orjson.dumps(a.to_json()) + b"\n" for a in alerts)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "ab") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as err:
            return DeliveryResult(
                ok=False,
                retriable=True,
                error=f"cannot append to {self.path}: {err.strerror or err}",
            )
        return DeliveryResult.success()

    def __repr__(self) -> str:
        return f"FileNotifier(path={str(self.path)!r})"
