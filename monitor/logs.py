"""Logs as JSON lines: a stable event name plus key-values (``extra=``)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_STD = set(vars(logging.makeLogRecord({})))  # attributes every LogRecord has


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STD and k not in out:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


class RateLimit(logging.Filter):
    """Let each message (logger, level, unformatted text) of the loggers under
    ``prefix`` through once per ``seconds``; other loggers' records all pass."""

    def __init__(self, seconds: float, prefix: str = "", clock: Any = time.monotonic) -> None:
        super().__init__()
        self.seconds, self.prefix, self.clock = seconds, prefix, clock
        self._last: dict[tuple[str, int, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        if now - self._last.get(key, -float("inf")) < self.seconds:
            return False
        if len(self._last) > 1000:  # messages with their data in the text: bounded
            self._last.clear()
        self._last[key] = now
        return True


def setup(level: str = "INFO", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # a broker that is down makes the client repeat itself several times a second; the
    # daemon says so once per retry ("cannot reach ..."): each of the client's messages
    # is let through once a minute (on the handler: the client logs on child loggers)
    handler.addFilter(RateLimit(60.0, prefix="kafka"))
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # job runs are not news
