"""The SQL store on SQLite and PostgreSQL: schema versions, silences, a durable outbox."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alerts.outbox import OutboxItem
from alerts.receivers import GroupInfo
from alerts.silences import new_silence
from monitor.store import (
    CLAIM_SECONDS,
    MIGRATIONS,
    SCHEMA_VERSION,
    SqlOutbox,
    Store,
    StoreError,
    meta,
    silences,
)
from tests.alerts.support import T0, alert


def test_a_new_database_gets_the_current_schema_and_reopening_changes_nothing(db_engine):
    store = Store(db_engine)
    assert store.schema_version() == SCHEMA_VERSION
    tables = set(sa.inspect(db_engine).get_table_names())
    assert {"driftwatch_meta", "driftwatch_silences", "driftwatch_outbox"} <= tables
    assert Store(db_engine).migrate() == SCHEMA_VERSION  # found current: nothing applied


def test_a_database_from_before_versioning_is_upgraded_in_place(db_engine):
    with db_engine.begin() as conn:  # the first schema: only the meta table, no version row
        meta.create(conn)
    assert Store(db_engine).schema_version() == SCHEMA_VERSION


def test_a_newer_database_is_refused(db_engine):
    Store(db_engine)
    with db_engine.begin() as conn:
        conn.execute(sa.update(meta).values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(StoreError, match="newer than this driftwatch"):
        Store(db_engine)


def test_silences_round_trip_and_expire(db_engine):
    store = Store(db_engine)
    s = new_silence(['model="churn"', 'kind=~"data_.*"'], ends_at=T0 + 3600,
                    created_by="ana", comment="retraining churn", now=T0)
    store.put_silence(s)
    (back,) = Store(db_engine).silences()  # another instance sees it
    assert back == s
    assert store.silences(active_after=T0 + 4000) == []
    assert store.expire_silence(s.id, T0 + 60)
    assert not store.expire_silence(s.id, T0 + 61)  # already ended
    assert not store.expire_silence("nope", T0)
    (ended,) = store.silences()
    assert ended.ends_at == T0 + 60 and ended.state(T0 + 61) == "expired"


def item(now: float = T0, feature: str = "age") -> OutboxItem:
    return OutboxItem.new("ds", 0, "webhook", [alert("data_drift", feature=feature)],
                          GroupInfo("ds", "{}:{}"), now)


def test_the_outbox_survives_a_restart_without_losing_or_repeating(db_engine):
    first = SqlOutbox(Store(db_engine))
    a, b = item(), item(T0 + 1, feature="plan")
    assert first.put(a) and first.put(b)
    first.ack(a.id)
    first.reschedule(b.id, T0 + 30, "HTTP 503")
    again = SqlOutbox(Store(db_engine))  # a new process on the same database
    assert [i.id for i in again.queued()] == [b.id]
    (queued,) = again.due(T0 + 30)
    assert (queued.attempts, queued.last_error) == (1, "HTTP 503")
    assert not again.put(item())  # a was delivered before the restart: not again
    # claimed by this caller while it sends: due for others only after CLAIM_SECONDS
    assert again.pending() == 1 and again.next_attempt_at() == T0 + 30 + CLAIM_SECONDS
    assert again.due(T0 + 31) == [] and SqlOutbox(Store(db_engine)).due(T0 + 31) == []
    (retry,) = again.due(T0 + 30 + CLAIM_SECONDS)  # the sender died: due again
    assert retry.id == b.id


def test_prune_forgets_old_delivered_notifications_only(db_engine):
    box = SqlOutbox(Store(db_engine))
    a, b = item(), item(T0 + 1, feature="plan")
    box.put(a)
    box.put(b)
    box.ack(a.id)
    assert box.prune(older_than=float("inf")) == 1
    assert box.pending() == 1



def test_a_version_1_database_is_migrated_and_keeps_its_data(db_engine):
    with db_engine.begin() as conn:  # what driftwatch wrote before checkpoints existed
        meta.create(conn)
        MIGRATIONS[0](conn)
        conn.execute(sa.insert(meta).values(key="schema_version", value="1"))
    old = new_silence(['model="churn"'], ends_at=T0 + 60, created_by="ana", comment="c", now=T0)
    with db_engine.begin() as conn:
        conn.execute(sa.insert(silences).values(
            id=old.id, matchers='["model=\\"churn\\""]', starts_at=old.starts_at,
            ends_at=old.ends_at, created_by="ana", comment="c", created_at=T0))
    store = Store(db_engine)
    assert store.schema_version() == SCHEMA_VERSION >= 2
    assert [s.id for s in store.silences()] == [old.id]
    assert store.load_checkpoint("g") is None


def test_checkpoints_hold_state_and_offsets_together(db_engine):
    store = Store(db_engine)
    store.save_checkpoint("g", {"watermark": 1.5, "models": {}}, {"predictions:0": 42}, T0)
    store.save_checkpoint("g", {"watermark": 2.5, "models": {}}, {"predictions:0": 99,
                                                                  "labels:1": 7}, T0 + 1)
    state, offsets = Store(db_engine).load_checkpoint("g")
    assert state == {"watermark": 2.5, "models": {}}
    assert offsets == {"predictions:0": 99, "labels:1": 7}
    assert store.load_checkpoint("other") is None


def test_retention_forgets_old_silences_and_notifications(db_engine):
    store = Store(db_engine)
    old = new_silence(['model="a"'], ends_at=T0 + 60, created_by="x", comment="y", now=T0)
    new = new_silence(['model="b"'], ends_at=T0 + 10 * 86_400, created_by="x", comment="y",
                      now=T0)
    store.put_silence(old)
    store.put_silence(new)
    assert store.prune_silences(older_than=T0 + 86_400) == 1
    assert [s.id for s in store.silences()] == [new.id]


def test_one_lease_per_group_renewed_by_its_owner_taken_over_when_it_lapses(db_engine):
    a, b = Store(db_engine), Store(db_engine)  # two daemons, one database
    assert a.acquire_lease("g", "A", ttl=10, now=T0)
    assert not b.acquire_lease("g", "B", ttl=10, now=T0 + 5)  # A is alive: B stands by
    assert a.acquire_lease("g", "A", ttl=10, now=T0 + 8)  # renewed to T0 + 18
    assert not b.acquire_lease("g", "B", ttl=10, now=T0 + 15)
    assert b.acquire_lease("g", "B", ttl=10, now=T0 + 19)  # A went silent: B takes over
    assert not a.acquire_lease("g", "A", ttl=10, now=T0 + 20)  # A must stop
    assert a.lease_holder("g") == ("B", T0 + 29)
    assert a.acquire_lease("other", "A", ttl=10, now=T0)  # groups are independent
    b.release_lease("g", "B")
    assert a.acquire_lease("g", "A", ttl=10, now=T0 + 21)


def test_a_version_3_outbox_gets_hashed_identities_and_still_knows_its_notifications(
        db_engine):
    import orjson

    from monitor.store import outbox

    with db_engine.begin() as conn:  # driftwatch before v4 kept identities in clear
        meta.create(conn)
        for step in MIGRATIONS[:3]:
            step(conn)
        conn.execute(sa.insert(meta).values(key="schema_version", value="3"))
        sent = item()
        conn.execute(sa.insert(outbox).values(
            id=sent.id, dedup="|".join(str(x) for x in sent.dedup_key), state="delivered",
            next_attempt_at=T0, attempts=1, last_error="",
            item=orjson.dumps(sent.to_json()).decode(), updated_at=T0))
    store = Store(db_engine)
    assert store.schema_version() == SCHEMA_VERSION >= 4
    assert not SqlOutbox(store).put(item())  # delivered before the upgrade: not again


def test_checkpoint_rows_are_claimed_and_a_superseded_claim_cannot_write(db_engine):
    from monitor.store import Fenced

    a, b = Store(db_engine), Store(db_engine)  # two daemons, one database
    assert a.claim_checkpoint("g/0", "A", T0) == (1, False)  # a new row
    a.save_checkpoint("g/0", {"n": 1}, {"predictions:0": 10}, T0, claim=("A", 1))
    assert a.claim_checkpoint("g/0", "A", T0) == (2, True)  # our own row, as we left it
    assert b.claim_checkpoint("g/0", "B", T0) == (3, False)  # Kafka gave it to B
    with pytest.raises(Fenced):
        a.save_checkpoint("g/0", {"n": 2}, {"predictions:0": 20}, T0, claim=("A", 2))
    assert b.load_checkpoint("g/0") == ({"n": 1}, {"predictions:0": 10})
    b.save_checkpoint("g/0", {"n": 3}, {"predictions:0": 30}, T0, claim=("B", 3))
    assert a.load_checkpoint("g/0") == ({"n": 3}, {"predictions:0": 30})
    assert a.claim_checkpoint("g/0", "A", T0) == (4, False)  # B wrote since: not ours


def test_daemons_starting_together_on_an_empty_database_all_come_up(db_engine):
    """Several daemons started at once against a new database: the schema is created
    once, and every one of them starts (none dies on the other's CREATE TABLE)."""
    import threading

    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_store() -> None:
        barrier.wait()
        try:
            Store(db_engine)
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion)
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert Store(db_engine).schema_version() == SCHEMA_VERSION
