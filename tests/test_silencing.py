"""Silences through the daemon's HTTP API and the CLI, persisted in the store."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from alerts.silences import Silencer
from monitor.cli import main
from monitor.http import HttpServer
from monitor.silencing import SilenceApi
from monitor.store import Store


def call(url: str, method: str = "GET", body: object | None = None) -> tuple[int, object]:
    data = orjson.dumps(body) if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


@pytest.fixture
def api(db_engine):
    store = Store(db_engine)
    silencer = Silencer(lambda: store.silences(), ttl=3600)  # only refresh() reloads
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(),
                        handlers={"/api/silences": SilenceApi(store, silencer)}).start()
    try:
        yield server.url + "/api/silences", store, silencer
    finally:
        server.stop()


def test_create_list_and_expire_over_http(api):
    url, store, silencer = api
    status, reply = call(url, "POST", {"matchers": ['model="churn"'], "duration": "2h",
                                       "createdBy": "ana", "comment": "retraining"})
    assert status == 200
    sid = reply["silenceID"]
    assert [s.id for s in store.silences()] == [sid]  # persisted
    assert silencer.silenced_by({"model": "churn"}, store.silences()[0].starts_at + 1) == [sid]
    status, listed = call(url)
    assert status == 200 and listed[0]["id"] == sid
    assert listed[0]["status"] == {"state": "active"} and listed[0]["createdBy"] == "ana"
    assert call(f"{url}/{sid}", "DELETE") == (200, {"expired": sid})
    assert call(f"{url}/{sid}", "DELETE")[0] == 404
    assert call(url)[1][0]["status"] == {"state": "expired"}


@pytest.mark.parametrize(("body", "message"), [
    ({"matchers": ['model="churn"'], "createdBy": "a", "comment": "c"}, "endsAt"),
    ({"matchers": ['model=~".*"'], "duration": "1h", "createdBy": "a", "comment": "c"},
     "every alert"),
    ({"matchers": "model=churn", "duration": "1h", "createdBy": "a", "comment": "c"},
     "list of strings"),
    ({"matchers": ['model="m"'], "duration": "soon", "createdBy": "a", "comment": "c"},
     "duration"),
    ({"matchers": ['model="m"'], "endsAt": "tomorrow", "createdBy": "a", "comment": "c"},
     "RFC 3339"),
    ({"matchers": ['model="m"'], "duration": "1h", "createdBy": "a"}, "comment"),
])
def test_bad_requests_say_what_is_wrong(api, body, message):
    url, store, _ = api
    status, reply = call(url, "POST", body)
    assert status == 400 and message in reply["error"], reply
    assert store.silences() == []


def test_cli_add_list_expire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "dw.db"}"\n')
    assert main(["silence", "add", "--config", str(cfg), "--duration", "30m", "--author", "ana",
                 "--comment", "deploy of v4", 'model="churn"', 'team="data-science"']) == 0
    sid = capsys.readouterr().out.strip()
    assert main(["silence", "list", "--config", str(cfg)]) == 0
    line = capsys.readouterr().out
    assert sid in line and "active" in line and "deploy of v4" in line
    assert main(["silence", "expire", "--config", str(cfg), sid]) == 0
    assert main(["silence", "list", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.strip() == f"expired {sid}"
    assert main(["silence", "expire", "--config", str(cfg), sid]) == 1
    assert main(["silence", "add", "--config", str(cfg), "--author", "ana", "--comment", "x",
                 'model=~".*"']) == 2
    assert "every alert" in capsys.readouterr().err
