"""AlertBook lifecycle: fire, stay, resolve after clean windows; state round trip."""

from __future__ import annotations

import orjson
import pytest

from alerts.attribution import attribute
from alerts.book import AlertBook
from alerts.model import Finding
from tests.alerts.support import T0, finding

AGE = ("churn", "data_drift", "age", None)
PLAN = ("churn", "data_drift", "plan", None)
LAT = ("churn", "latency_regression", None, None)


def drift(feature: str = "age", **kw: object) -> Finding:
    return finding("data_drift", feature=feature, **kw)


def test_fire_stay_resolve() -> None:
    book = AlertBook(resolve_after=2)
    (fired,) = book.update("churn", [AGE, PLAN], attribute([drift()]), now=T0)
    assert fired.status == "firing" and fired.starts_at == T0 and fired.ends_at is None
    assert fired.labels["feature"] == "age"
    assert book.firing() == [fired]

    assert book.update("churn", [AGE, PLAN], attribute([drift()]), now=T0 + 60) == []
    assert book.update("churn", [AGE, PLAN], [], now=T0 + 120) == []  # 1 clean window
    (resolved,) = book.update("churn", [AGE, PLAN], [], now=T0 + 180)  # 2 clean windows
    assert resolved.status == "resolved"
    assert resolved.fingerprint == fired.fingerprint
    assert resolved.labels == fired.labels
    assert (resolved.starts_at, resolved.ends_at) == (T0, T0 + 180)
    assert book.firing() == []
    assert book.update("churn", [AGE], [], now=T0 + 240) == []


def test_resolve_ends_a_firing_alert_at_once() -> None:
    book = AlertBook(resolve_after=5)
    (fired,) = book.update("churn", [AGE], attribute([drift()]), now=T0)
    assert book.is_firing(AGE) and not book.is_firing(PLAN)
    assert book.resolve(PLAN, now=T0 + 1) == []
    (resolved,) = book.resolve(AGE, now=T0 + 30)
    assert resolved.status == "resolved" and resolved.fingerprint == fired.fingerprint
    assert (resolved.starts_at, resolved.ends_at) == (T0, T0 + 30)
    assert not book.is_firing(AGE) and book.resolve(AGE, now=T0 + 60) == []


def test_seen_again_resets_the_clean_count() -> None:
    book = AlertBook(resolve_after=2)
    book.update("churn", [AGE], attribute([drift()]), now=T0)
    assert book.update("churn", [AGE], [], now=T0 + 1) == []
    assert book.update("churn", [AGE], attribute([drift()]), now=T0 + 2) == []
    assert book.update("churn", [AGE], [], now=T0 + 3) == []  # count restarted at 0
    assert [a.status for a in book.update("churn", [AGE], [], now=T0 + 4)] == ["resolved"]


def test_resolve_after_one() -> None:
    book = AlertBook(resolve_after=1)
    book.update("churn", [AGE], attribute([drift()]), now=T0)
    (r,) = book.update("churn", [AGE], [], now=T0 + 1)
    assert r.status == "resolved"
    with pytest.raises(ValueError, match="resolve_after"):
        AlertBook(resolve_after=0)


def test_keys_not_evaluated_and_other_models_are_untouched() -> None:
    book = AlertBook(resolve_after=1)
    book.update("churn", [AGE], attribute([drift()]), now=T0)
    book.update(
        "eta",
        [("eta", "latency_regression", None, None)],
        attribute([finding("latency_regression", model="eta")]),
        now=T0,
    )
    assert len(book) == 2
    # an eta evaluation that (wrongly) lists a churn key never resolves churn's alert
    assert book.update("eta", [AGE], [], now=T0 + 1) == []
    # churn evaluated without testing 'age' (e.g. feature absent): untouched
    assert book.update("churn", [PLAN, LAT], [], now=T0 + 2) == []
    assert {a.labels["model"] for a in book.firing()} == {"churn", "eta"}
    (r,) = book.update("churn", [AGE], [], now=T0 + 3)
    assert r.labels["model"] == "churn"
    assert [a.labels["model"] for a in book.firing()] == ["eta"]


def test_a_new_model_version_does_not_orphan_the_alert() -> None:
    book = AlertBook(resolve_after=1)
    (fired,) = book.update("churn", [AGE], attribute([drift(model_version="v3")]), now=T0)
    assert book.update("churn", [AGE], attribute([drift(model_version="v4")]), now=T0 + 1) == []
    (r,) = book.update("churn", [AGE], [], now=T0 + 2)
    assert r.labels["model_version"] == "v3"
    assert r.fingerprint == fired.fingerprint


def test_several_alerts_in_one_window() -> None:
    book = AlertBook()
    changes = book.update(
        "churn",
        [AGE, PLAN, LAT],
        attribute([drift("age"), drift("plan"), finding("latency_regression")]),
        now=T0,
    )
    assert [a.labels["kind"] for a in changes] == ["data_drift", "data_drift", "latency_regression"]
    assert len({a.fingerprint for a in changes}) == 3


def test_state_round_trip() -> None:
    book = AlertBook(resolve_after=3)
    book.update(
        "churn",
        [AGE, PLAN],
        attribute([drift("age", details={"ref_mean": 41.0, "cur_mean": 52.5}), drift("plan")]),
        now=T0,
    )
    book.update("churn", [AGE, PLAN], attribute([drift("plan")]), now=T0 + 1)  # age: 1 clean
    book.firing()[0].receivers = ["data-science"]
    state = orjson.loads(orjson.dumps(book.to_state()))  # plain JSON
    copy = AlertBook.from_state(state)
    assert copy.to_state() == book.to_state()
    assert [a.to_json() for a in copy.firing()] == [a.to_json() for a in book.firing()]
    # the lifecycle continues where it stopped: age needs two more clean windows
    assert copy.update("churn", [AGE], [], now=T0 + 2) == []
    (r,) = copy.update("churn", [AGE], [], now=T0 + 3)
    assert r.labels["feature"] == "age" and r.receivers == ["data-science"]
    assert AlertBook.from_state(state, resolve_after=1).resolve_after == 1


def test_unknown_state_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        AlertBook.from_state({"version": 99, "resolve_after": 2, "alerts": []})
