"""A corrupt checkpoint row no longer wedges its partition (issue 27): it is set
aside for inspection, the partition goes on afresh from its stored offsets, and an
ML-engineering alert says the state was lost.  On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from monitor.config.types import Config, MonitorSettings
from monitor.daemon import Daemon
from monitor.store import CorruptCheckpoint, Store, checkpoints
from tests.test_daemon import TP, Record, attach, event

ROW = "driftwatch/0"


def corrupt(store: Store, state: str, offsets: str = '{"predictions:0": 1234}') -> None:
    store.save_checkpoint(ROW, {"pipeline": {}}, {"predictions:0": 1}, 0.0)
    with store.engine.begin() as conn:
        conn.execute(sa.update(checkpoints).where(checkpoints.c.name == ROW)
                     .values(state=state, offsets=offsets))


def test_a_corrupt_row_is_refused_with_its_offsets_then_quarantined(db_engine) -> None:
    store = Store(db_engine)
    corrupt(store, '{"pipeline": {"trunc')
    with pytest.raises(CorruptCheckpoint) as err:
        store.load_checkpoint(ROW)
    assert err.value.offsets == {"predictions:0": 1234}
    assert store.quarantine_checkpoint(ROW, err.value.reason, 5.0) == {"predictions:0": 1234}
    (kept,) = store.quarantined(ROW)
    assert kept["state"] == '{"pipeline": {"trunc' and kept["reason"] == err.value.reason
    assert store.load_checkpoint(ROW) is None  # empty now, the offsets kept in the row
    with db_engine.connect() as conn:
        assert conn.execute(sa.select(checkpoints.c.offsets)).scalar_one() == \
            '{"predictions:0":1234}'


@pytest.mark.parametrize("state", ['{"pipeline": {"trunc', '{"pipeline": {"models": 7}}',
                                   '[1, 2]'])
def test_the_partition_starts_fresh_at_its_offsets_and_ml_engineering_is_told(
        db_engine, state) -> None:
    store = Store(db_engine)
    corrupt(store, state)
    sent = []
    cfg = Config(defaults=MonitorSettings(reference_events=100, window_events=50))
    d = Daemon(cfg, registry=CollectorRegistry(), store=store, sink=sent.extend)
    c = attach(d, 0)  # neither raises nor leaves the partition paused
    assert c.seeks == [(TP("predictions", 0), 1234)] and not c.paused and not d.waiting
    (alert,) = [a for a in sent if a.labels["kind"] == "state_lost"]
    assert alert.status == "firing"
    assert (alert.labels["team"], alert.labels["fault"]) == ("ml-engineering", "infrastructure")
    assert ROW in alert.annotations["summary"]
    assert len(store.quarantined(ROW)) == 1
    # monitoring goes on; once the model's reference is full again the alert resolves
    c.batches = [{TP("predictions", 0): [Record(event(i), 1234 + i) for i in range(150)]}]
    assert d.step() == 150 and d.ready()
    assert d.checkpoint()
    assert [a.status for a in sent if a.labels["kind"] == "state_lost"] == ["firing", "resolved"]
    d.shutdown(flush_timeout=1)
