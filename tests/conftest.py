import gc
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.broker import EmbeddedBroker

# The PostgreSQL that runs on this machine (trust auth); every store test runs on it
# and on SQLite.  Each test gets a schema of its own, dropped afterwards.
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _collect_earlier_kafka_sockets() -> None:
    """kafka-python leaves the sockets of connection attempts that failed (a broker
    restarted or down, in the outage and start-up tests) to the garbage collector; on
    two workers such a socket could be collected inside whichever test came next on
    that worker and fail it with a ResourceWarning (warnings are errors here).  They
    are collected before each test instead, where they belong to no test."""
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
