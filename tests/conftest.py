import gc
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kafka.net.manager
import pytest
import sqlalchemy as sa

from monitor.broker import EmbeddedBroker

# The PostgreSQL that runs on this machine (trust auth); every store test runs on it
# and on SQLite.  Each test gets a schema of its own, dropped afterwards.
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# kafka-python clients (their connection managers) made in this process so far
_kafka_connections = [0]
_manager_init = kafka.net.manager.KafkaConnectionManager.__init__


def _counted_init(self: kafka.net.manager.KafkaConnectionManager, *args: object,
                  **kwargs: object) -> None:
    _kafka_connections[0] += 1
    _manager_init(self, *args, **kwargs)


kafka.net.manager.KafkaConnectionManager.__init__ = _counted_init  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _collect_kafka_sockets() -> Iterator[None]:
    """kafka-python leaves the sockets of connection attempts that failed (a broker
    restarted or down, in the outage and start-up tests) to the garbage collector; on
    two workers such a socket could be collected inside whichever test came next on
    that worker and fail it with a ResourceWarning (warnings are errors here).  After
    a test that made a kafka-python client they are collected, where they belong
    to no test (only then: a collection costs ~50 ms, 1,700 times over)."""
    made = _kafka_connections[0]
    yield
    if _kafka_connections[0] != made:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


@pytest.fixture(scope="session")
def broker():
    """A real Kafka-compatible broker (tansu) on a free loopback port."""
    with EmbeddedBroker() as b:
        yield b


def postgres_engine(schema: str) -> sa.Engine:
    return sa.create_engine(POSTGRES, connect_args={"options": f"-csearch_path={schema}"})


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if kind == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'driftwatch.db'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine = postgres_engine(schema)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with fresh_database(request.param, tmp_path) as engine:
        yield engine
