"""The store: what must outlive the process, in SQL (SQLAlchemy 2.x Core).

SQLite by default (``sqlite:///driftwatch.db``), PostgreSQL in production
(``postgresql+psycopg://user@host/db``); the same code and the same tests run
on both.  Today it holds silences and the notification outbox (so a receiver
that is down gets every notification when it comes back, across restarts).

Checkpoints: the pipeline's whole state and the Kafka offsets that produced
it, written in one transaction (:meth:`Store.save_checkpoint`); the daemon
commits the offsets to Kafka only after that, and on start restores the state
and seeks to the stored offsets, so a crash at any moment neither loses an
event nor counts one twice.

The schema is versioned: ``driftwatch_meta.schema_version``.  :meth:`Store.migrate`
applies every missing step of :data:`MIGRATIONS` in order, each in its own
transaction, so a database written by an older driftwatch is upgraded in place;
a database newer than this code is refused rather than misread.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alerts.outbox import CLAIM_SECONDS, OutboxItem
from alerts.silences import Silence

log = logging.getLogger("driftwatch.store")

metadata = sa.MetaData()

meta = sa.Table(
    "driftwatch_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

silences = sa.Table(
    "driftwatch_silences", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("matchers", sa.Text, nullable=False),  # JSON list of matcher strings
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=False, index=True),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

outbox = sa.Table(
    "driftwatch_outbox", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("dedup", sa.String(200), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),  # queued | delivered | failed
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("item", sa.Text, nullable=False),  # OutboxItem.to_json()
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_driftwatch_outbox_due", "state", "next_attempt_at"),
)


checkpoints = sa.Table(
    "driftwatch_checkpoints", metadata,
    # the consumer group, or "group/partition" when several daemons split the partitions
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),  # the pipeline's JSON state
    sa.Column("offsets", sa.Text, nullable=False),  # {"topic:partition": next offset}
    sa.Column("updated_at", sa.Float, nullable=False),
    # the daemon that claimed the row, and the claim's number: a save by any other
    # claim (a daemon Kafka already presumed dead) is refused
    sa.Column("owner", sa.String(255), nullable=False, server_default=""),
    sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),
)


# checkpoint rows that could not be read, kept for inspection (their partition started
# afresh at the stored offsets): never read back by driftwatch
quarantine = sa.Table(
    "driftwatch_checkpoint_quarantine", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, index=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("offsets", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("quarantined_at", sa.Float, nullable=False),
)


leases = sa.Table(
    "driftwatch_leases", metadata,
    sa.Column("name", sa.String(255), primary_key=True),  # the consumer group
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


def _v1(conn: Connection) -> None:
    for table in (silences, outbox):
        table.create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    checkpoints.create(conn, checkfirst=True)


def _v3(conn: Connection) -> None:
    leases.create(conn, checkfirst=True)


def _v4(conn: Connection) -> None:
    """Outbox identities become hashes (an identity longer than the column was refused by
    PostgreSQL, and its notification never sent)."""
    for r in list(conn.execute(sa.select(outbox.c.id, outbox.c.item))):
        item = OutboxItem.from_json(orjson.loads(r.item))
        conn.execute(sa.update(outbox).where(outbox.c.id == r.id).values(dedup=_dedup(item)))


def _v5(conn: Connection) -> None:
    """Checkpoint rows get an owner and a claim number (fencing)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(checkpoints.name)}
    for column, ddl in (("owner", "VARCHAR(255) NOT NULL DEFAULT ''"),
                        ("epoch", "INTEGER NOT NULL DEFAULT 0")):
        if column not in have:
            conn.execute(sa.text(f"ALTER TABLE {checkpoints.name} ADD COLUMN {column} {ddl}"))


def _v6(conn: Connection) -> None:
    """Unreadable checkpoint rows are set aside here instead of wedging their partition."""
    quarantine.create(conn, checkfirst=True)


# MIGRATIONS[i] upgrades a database at schema version i to version i + 1.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]
SCHEMA_VERSION = len(MIGRATIONS)


MIGRATION_LOCK = 0x64726966  # PostgreSQL advisory lock key ("drif") held while migrating
MIGRATE_ATTEMPTS = 5


class StoreError(RuntimeError):
    pass


class CorruptCheckpoint(StoreError):
    """A checkpoint row that cannot be parsed; ``offsets`` when those still can."""

    def __init__(self, name: str, reason: str, offsets: dict[str, int] | None) -> None:
        super().__init__(f"checkpoint {name!r} is unreadable: {reason}")
        self.name, self.reason, self.offsets = name, reason, offsets


class Fenced(StoreError):
    """The checkpoint row was claimed by another daemon since this one claimed it."""


def _upsert(conn: Connection, key: sa.Column[Any], value: str, row: dict[str, Any]) -> None:
    """Update the row whose ``key`` is ``value``, or insert it (portable SQL, no dialect
    upsert), inside the caller's transaction."""
    if conn.execute(sa.update(key.table).where(key == value).values(row)).rowcount == 0:
        conn.execute(sa.insert(key.table).values({key.name: value, **row}))


def _offsets(text: str) -> dict[str, int] | None:
    """A row's ``{"topic:partition": offset}``, or None when unreadable."""
    try:
        raw = orjson.loads(text)
        if not isinstance(raw, dict):
            return None
        return {str(k): int(v) for k, v in raw.items()}
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None


def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        # one writer at a time; wait for the lock instead of failing at once
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(url, pool_pre_ping=True)


class Store:
    def __init__(self, url: str | Engine, *, connect: bool = True) -> None:
        """``connect=False``: do not touch the database yet (the daemon calls
        :meth:`migrate` itself, retrying while the database is down)."""
        self.engine = engine_for(url) if isinstance(url, str) else url
        if connect:
            self.migrate()

    # -- schema ------------------------------------------------------------------
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(meta.name):
                return 0
            v = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version"))
            row = v.scalar_one_or_none()
            return int(row) if row is not None else 0

    def migrate(self) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found.

        Daemons started together on a new database migrate one at a time: on PostgreSQL
        under an advisory lock; elsewhere (SQLite) a step that lost the race to another
        process is read again and skipped."""
        for attempt in range(MIGRATE_ATTEMPTS):
            try:
                with self._exclusive():
                    return self._migrate()
            except (sa.exc.OperationalError, sa.exc.IntegrityError,
                    sa.exc.ProgrammingError):
                if attempt == MIGRATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))  # another daemon was creating the schema
        raise AssertionError("unreachable")

    def _migrate(self) -> int:
        with self.engine.begin() as conn:
            meta.create(conn, checkfirst=True)
        found = self.schema_version()
        if found > SCHEMA_VERSION:
            raise StoreError(f"the database has schema version {found}, newer than this "
                             f"driftwatch understands ({SCHEMA_VERSION}): upgrade driftwatch")
        for version in range(found, SCHEMA_VERSION):
            with self.engine.begin() as conn:
                MIGRATIONS[version](conn)
                self._set_version(conn, version + 1)
            log.info("store migrated", extra={"schema_version": version + 1})
        return found

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self.engine.dialect.name != "postgresql":
            yield
            return
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()

    @staticmethod
    def _set_version(conn: Connection, version: int) -> None:
        _upsert(conn, meta.c.key, "schema_version", {"value": str(version)})

    def close(self) -> None:
        self.engine.dispose()

    # -- checkpoints -------------------------------------------------------------
    def save_checkpoint(self, name: str, state: dict[str, Any], offsets: dict[str, int],
                        now: float, *, claim: tuple[str, int] | None = None) -> None:
        """State and offsets together, or neither.  With ``claim`` (owner, epoch) from
        :meth:`claim_checkpoint`, only while that claim is the row's latest: else
        :class:`Fenced`, and nothing is written."""
        row = {"state": orjson.dumps(state).decode(), "offsets": orjson.dumps(offsets).decode(),
               "updated_at": now}
        with self.engine.begin() as conn:
            if claim is None:
                _upsert(conn, checkpoints.c.name, name, row)
                return
            owner, epoch = claim
            done = conn.execute(sa.update(checkpoints).where(
                checkpoints.c.name == name, checkpoints.c.owner == owner,
                checkpoints.c.epoch == epoch).values(row))
            if done.rowcount == 0:
                raise Fenced(f"checkpoint {name!r} was claimed by another daemon "
                             f"(holder: {self._holder(conn, name)})")

    def load_checkpoint(self, name: str) -> tuple[dict[str, Any], dict[str, int]] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(checkpoints).where(checkpoints.c.name == name)).first()
        if r is None or not r.state:
            return None
        offsets = _offsets(r.offsets)
        try:
            state = orjson.loads(r.state)
        except orjson.JSONDecodeError as exc:
            raise CorruptCheckpoint(name, f"state is not JSON ({exc})", offsets) from None
        if not isinstance(state, dict):
            raise CorruptCheckpoint(name, "state is not a JSON object", offsets)
        if offsets is None:
            raise CorruptCheckpoint(name, "offsets are not a JSON object of integers", None)
        return state, offsets

    def quarantine_checkpoint(self, name: str, reason: str, now: float) -> dict[str, int]:
        """Set the row's state aside (copied into ``driftwatch_checkpoint_quarantine``
        with ``reason``) and empty it, keeping its offsets and claim; returns the
        offsets where its partitions go on (empty when those were unreadable too)."""
        with self.engine.begin() as conn:
            r = conn.execute(sa.select(checkpoints).where(checkpoints.c.name == name)).first()
            if r is None:
                return {}
            conn.execute(sa.insert(quarantine).values(
                name=name, state=r.state, offsets=r.offsets, reason=reason[:2000],
                quarantined_at=now))
            offsets = _offsets(r.offsets) or {}
            conn.execute(sa.update(checkpoints).where(checkpoints.c.name == name).values(
                state="", offsets=orjson.dumps(offsets).decode(), updated_at=now))
        log.error("checkpoint quarantined: its partitions start afresh at the stored offsets",
                  extra={"checkpoint": name, "reason": reason, "offsets": offsets})
        return offsets

    def quarantined(self, name: str | None = None) -> list[dict[str, Any]]:
        """The quarantined rows (of ``name``), oldest first."""
        q = sa.select(quarantine).order_by(quarantine.c.id)
        if name is not None:
            q = q.where(quarantine.c.name == name)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def checkpoint_names(self, group: str) -> list[str]:
        """The checkpoint rows of a consumer group: its one row, or one per shard."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(checkpoints.c.name).where(sa.or_(
                checkpoints.c.name == group, checkpoints.c.name.startswith(group + "/"))))
            return sorted(str(r.name) for r in rows)

    def claim_checkpoint(self, name: str, owner: str, now: float) -> tuple[int, bool]:
        """Make ``owner`` the row's only writer (Kafka assigned it the partitions);
        returns the claim's epoch and whether the row's previous claim was this owner's
        own latest one (then the row holds exactly what the owner last saved)."""
        with self.engine.begin() as conn:
            r = conn.execute(sa.select(checkpoints.c.owner, checkpoints.c.epoch)
                             .where(checkpoints.c.name == name)).first()
            if r is None:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(checkpoints).values(
                            name=name, state="", offsets="{}", updated_at=now, owner=owner,
                            epoch=1))
                    return 1, False
                except sa.exc.IntegrityError:  # claimed this very moment: go again
                    r = conn.execute(sa.select(checkpoints.c.owner, checkpoints.c.epoch)
                                     .where(checkpoints.c.name == name)).one()
            epoch = int(r.epoch) + 1
            done = conn.execute(sa.update(checkpoints).where(
                checkpoints.c.name == name, checkpoints.c.epoch == r.epoch)
                .values(owner=owner, epoch=epoch))
            if done.rowcount == 0:
                raise Fenced(f"checkpoint {name!r} claimed concurrently")
            return epoch, r.owner == owner

    @staticmethod
    def _holder(conn: Connection, name: str) -> str:
        r = conn.execute(sa.select(checkpoints.c.owner, checkpoints.c.epoch)
                         .where(checkpoints.c.name == name)).first()
        return "none" if r is None else f"{r.owner} #{r.epoch}"

    # -- leases: one active daemon per consumer group -----------------------------
    def acquire_lease(self, name: str, owner: str, ttl: float, now: float) -> bool:
        """Take (or renew) the group's lease; False while another owner holds it."""
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(leases).where(
                leases.c.name == name,
                sa.or_(leases.c.owner == owner, leases.c.expires_at < now),
            ).values(owner=owner, expires_at=now + ttl))
            if done.rowcount:
                return True
            if conn.execute(sa.select(leases.c.name).where(leases.c.name == name)).first():
                return False
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(leases).values(name=name, owner=owner,
                                                          expires_at=now + ttl))
            except sa.exc.IntegrityError:  # another daemon took it just now
                return False
            return True

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        return None if r is None else (r.owner, r.expires_at)

    def release_lease(self, name: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(leases).where(leases.c.name == name, leases.c.owner == owner))

    # -- silences ----------------------------------------------------------------
    def put_silence(self, s: Silence) -> None:
        row = {"matchers": orjson.dumps(list(s.matchers)).decode(), "starts_at": s.starts_at,
               "ends_at": s.ends_at, "created_by": s.created_by, "comment": s.comment,
               "created_at": s.created_at}
        with self.engine.begin() as conn:
            _upsert(conn, silences.c.id, s.id, row)

    def silences(self, *, active_after: float | None = None) -> list[Silence]:
        """Every silence (only those ending after ``active_after`` when given)."""
        q = sa.select(silences).order_by(silences.c.created_at)
        if active_after is not None:
            q = q.where(silences.c.ends_at > active_after)
        with self.engine.connect() as conn:
            return [Silence(r.id, tuple(orjson.loads(r.matchers)), r.starts_at, r.ends_at,
                            r.created_by, r.comment, r.created_at)
                    for r in conn.execute(q)]

    def prune_silences(self, older_than: float) -> int:
        """Forget silences that ended before ``older_than``."""
        with self.engine.begin() as conn:
            return int(conn.execute(sa.delete(silences)
                                    .where(silences.c.ends_at < older_than)).rowcount)

    def expire_silence(self, silence_id: str, now: float) -> bool:
        """End a silence now; False when there is no such silence or it already ended."""
        with self.engine.begin() as conn:
            starts = conn.execute(sa.select(silences.c.starts_at).where(
                silences.c.id == silence_id, silences.c.ends_at > now)).scalar_one_or_none()
            if starts is None:
                return False
            conn.execute(sa.update(silences).where(silences.c.id == silence_id)
                         .values(ends_at=now, starts_at=min(float(starts), now)))
            return True


def _dedup(item: OutboxItem) -> str:
    """The notification's identity, hashed: a group key holds every label of the group
    (``group_by = ["..."]``) and would overflow any fixed-width column."""
    return hashlib.sha256("|".join(str(x) for x in item.dedup_key).encode()).hexdigest()


class SqlOutbox:
    """The :class:`~alerts.outbox.Outbox` interface on the store's outbox table.

    Delivered rows are kept (state ``delivered``) so a notification put again
    after a restart is recognised as a duplicate; :meth:`prune` drops old ones.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def put(self, item: OutboxItem) -> bool:
        row = {"state": "queued", "next_attempt_at": item.next_attempt_at,
               "attempts": item.attempts, "last_error": item.last_error,
               "item": orjson.dumps(item.to_json()).decode(), "updated_at": item.created_at}
        dedup = _dedup(item)
        with self.engine.begin() as conn:
            state = conn.execute(sa.select(outbox.c.state).where(outbox.c.dedup == dedup)
                                 ).scalar_one_or_none()
            if state is None:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(outbox).values(id=item.id, dedup=dedup, **row))
                except sa.exc.IntegrityError:  # another instance put it first
                    return False
                return True
            if state != "failed":
                return False
            # a failed notification put again is queued again (under its new id)
            conn.execute(sa.update(outbox).where(outbox.c.dedup == dedup)
                         .values(id=item.id, **row))
            return True

    @staticmethod
    def _item(r: Any) -> OutboxItem:
        item = OutboxItem.from_json(orjson.loads(r.item))
        item.id, item.attempts = r.id, r.attempts
        item.next_attempt_at, item.last_error = r.next_attempt_at, r.last_error
        return item

    def _where(self, state: str) -> sa.Select[Any]:
        return (sa.select(outbox).where(outbox.c.state == state)
                .order_by(outbox.c.next_attempt_at, outbox.c.id))

    def due(self, now: float) -> list[OutboxItem]:
        """The items due at ``now``, each claimed for this caller: its next attempt moves
        :data:`CLAIM_SECONDS` ahead, so another daemon on the same store does not send it
        too; a caller that dies mid-send leaves it due again after that."""
        with self.engine.connect() as conn:
            rows = list(conn.execute(self._where("queued")
                                     .where(outbox.c.next_attempt_at <= now)))
        mine = []
        for r in rows:
            with self.engine.begin() as conn:
                done = conn.execute(sa.update(outbox).where(
                    outbox.c.id == r.id, outbox.c.state == "queued",
                    outbox.c.next_attempt_at == r.next_attempt_at,
                ).values(next_attempt_at=now + CLAIM_SECONDS))
            if done.rowcount == 1:
                mine.append(self._item(r))
        return mine

    def _update(self, item_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(outbox)
                         .where(outbox.c.id == item_id, outbox.c.state == "queued")
                         .values(updated_at=time.time(), **values))

    def ack(self, item_id: str) -> None:
        self._update(item_id, state="delivered")

    def reschedule(self, item_id: str, next_attempt_at: float, error: str) -> None:
        self._update(item_id, next_attempt_at=next_attempt_at, last_error=error,
                     attempts=outbox.c.attempts + 1)

    def fail(self, item_id: str, error: str) -> None:
        self._update(item_id, state="failed", last_error=error, attempts=outbox.c.attempts + 1)

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)
                                    .where(outbox.c.state == "queued")).scalar_one())

    def next_attempt_at(self) -> float | None:
        with self.engine.connect() as conn:
            v = conn.execute(sa.select(sa.func.min(outbox.c.next_attempt_at))
                             .where(outbox.c.state == "queued")).scalar_one_or_none()
            return None if v is None else float(v)

    def queued(self) -> list[OutboxItem]:
        with self.engine.connect() as conn:
            return [self._item(r) for r in conn.execute(self._where("queued"))]

    def failed(self) -> list[OutboxItem]:
        with self.engine.connect() as conn:
            return [self._item(r) for r in conn.execute(self._where("failed"))]

    def prune(self, older_than: float) -> int:
        """Forget delivered and failed notifications last touched before ``older_than``."""
        with self.engine.begin() as conn:
            done = conn.execute(sa.delete(outbox).where(outbox.c.state != "queued",
                                                        outbox.c.updated_at < older_than))
            return int(done.rowcount)


__all__: Sequence[str] = ("CLAIM_SECONDS", "MIGRATIONS", "SCHEMA_VERSION", "CorruptCheckpoint",
                          "Fenced", "SqlOutbox",
                          "Store", "StoreError")
