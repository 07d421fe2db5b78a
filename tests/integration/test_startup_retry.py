"""`run` with the broker or the database down stays up, not ready, and says so once
per retry (issue 27: it used to log ~60 client lines, then die after 32 s)."""

from __future__ import annotations

import io
import logging
import threading
import time
import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor import logs
from monitor.broker import free_port
from monitor.config.types import Config, HttpConfig, KafkaConfig, StoreConfig
from monitor.daemon import Daemon
from monitor.store import Store

pytestmark = [
    pytest.mark.integration,
    # kafka-python leaves its sockets to the garbage collector when its constructor gives
    # up on the brokers (each retry here): not ours to close
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

WATCH_SECONDS = 8.0


def readyz(url: str) -> int:
    try:
        return urllib.request.urlopen(f"{url}/readyz", timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code


def run_down(config: Config, store: Store | None) -> tuple[list[dict], list[int], bool]:
    """Run the daemon for WATCH_SECONDS: its log lines, /readyz answers, whether alive."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("kafka").level)
    logs.setup("INFO", stream)
    try:
        d = Daemon(config, registry=CollectorRegistry(), store=store,
                   consumer_overrides={"bootstrap_timeout_ms": 1_000})
        http = d.start_http()
        runner = threading.Thread(target=d.run, daemon=True)
        runner.start()
        codes = []
        deadline = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < deadline:
            codes.append(readyz(http.url))
            time.sleep(1.0)
        alive = runner.is_alive()
        d.request_stop()
        runner.join(timeout=15)
        assert not runner.is_alive()
    finally:
        root.handlers[:], _, _ = saved[0], None, None
        root.setLevel(saved[1])
        logging.getLogger("kafka").setLevel(saved[2])
    lines = [orjson.loads(x) for x in stream.getvalue().splitlines() if x.startswith("{")]
    return lines, codes, alive


def test_a_broker_nobody_listens_on_is_retried_with_backoff_not_fatal() -> None:
    nobody = free_port()
    config = Config(kafka=KafkaConfig(bootstrap_servers=(f"127.0.0.1:{nobody}",)),
                    http=HttpConfig(port=free_port()))
    lines, codes, alive = run_down(config, None)
    assert alive and set(codes) == {503}
    retries = [x for x in lines if x["event"].startswith("cannot reach the Kafka")]
    # attempts at 0, ~2 (1 s timeout + 1 s), ~5 (+ 2 s): one line each, never a traceback
    assert 2 <= len(retries) <= 4, [x["event"] for x in lines]
    assert not any("exc" in x for x in lines)
    client = [x for x in lines if x["logger"].startswith("kafka")]
    assert len(client) <= 8, [x["event"] for x in client]  # each message once a minute


def test_a_database_that_is_down_is_retried_with_backoff_not_fatal() -> None:
    nobody = free_port()
    config = Config(kafka=KafkaConfig(bootstrap_servers=(f"127.0.0.1:{free_port()}",)),
                    store=StoreConfig(url=f"postgresql+psycopg://postgres@127.0.0.1:{nobody}/x"),
                    http=HttpConfig(port=free_port()))
    lines, codes, alive = run_down(config, Store(config.store.url, connect=False))
    assert alive and set(codes) == {503}
    retries = [x for x in lines if x["event"].startswith("cannot reach the database")]
    assert 2 <= len(retries) <= 5, [x["event"] for x in lines]
    assert not any("exc" in x for x in lines)
