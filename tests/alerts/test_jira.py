"""The JIRA receiver against a local JIRA (tests/alerts/jira_server.py): Cloud (REST v3,
ADF) and Data Center (REST v2, wiki markup); one issue per group, found again, updated,
resolved, reopened, left alone when won't-fix; retried through the outbox."""

from __future__ import annotations

import base64
import copy
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.config import RouteConfig
from alerts.dispatch import Dispatcher
from alerts.inhibit import Inhibitor
from alerts.model import Alert
from alerts.outbox import MemoryOutbox
from alerts.receivers import build_notifiers
from alerts.receivers.base import GroupInfo, OptionError
from alerts.receivers.jira import JiraNotifier, dedup_label
from alerts.routing import RouteTree
from monitor.config.load import validate
from tests.alerts.jira_server import FakeJira, check_adf
from tests.alerts.support import FIRING, GROUP, Clock, uncommented

USER, TOKEN = "dw@example.com", "jira-api-t0ken-0123456789abcdef"
PAT = "dc-personal-access-t0ken-abcdef0123456789"
BASIC = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()


@pytest.fixture
def cloud() -> Iterator[FakeJira]:
    jira = FakeJira(cloud=True, authorization=BASIC)
    try:
        yield jira
    finally:
        jira.close()


@pytest.fixture
def datacenter() -> Iterator[FakeJira]:
    jira = FakeJira(cloud=False, authorization=f"Bearer {PAT}")
    try:
        yield jira
    finally:
        jira.close()


def make(jira: FakeJira, **options: Any) -> JiraNotifier:
    base: dict[str, Any] = {"api_url": jira.url, "project": "DS", "issue_type": "Bug"}
    if jira.cloud:
        base.update(api_type="cloud", user=USER, api_token=TOKEN)
    else:
        base.update(api_type="datacenter", bearer_token=PAT)
    return JiraNotifier({**base, **options}, "data-science")


def later(n: JiraNotifier) -> JiraNotifier:
    """``n`` after INDEX_LAG: only the search can find the issues it created."""
    n._created.clear()
    return n


def firing(**annotations: str) -> Alert:
    a = copy.deepcopy(FIRING)
    a.annotations.update(annotations)
    return a


def resolved(a: Alert, at: float = 1800.0) -> Alert:
    out = copy.deepcopy(a)
    out.status, out.ends_at = "resolved", a.starts_at + at
    return out


FULL = {"resolve_transition": "Done", "reopen_transition": "Reopen",
        "wont_fix_resolution": "Won't Fix", "reopen_duration": 3600.0}


def test_cloud_creates_one_issue_with_an_adf_description(cloud: FakeJira) -> None:
    a = firing(runbook_url="https://wiki.example.com/rb/data_drift",
               dashboard_url="https://grafana.example.com/d/dw?var-model=churn")
    n = make(cloud, labels=["driftwatch", "team {team}"], priority="High")
    result = n.send([a], GROUP)
    assert result.ok, result.error
    assert cloud.errors == []
    assert cloud.api_calls() == ["POST /rest/api/3/search/jql", "POST /rest/api/3/issue"]
    search = cloud.calls[0].body
    assert search["jql"] == (f'statusCategory != Done and project = "DS" and labels = '
                             f'"{dedup_label(GROUP)}" order by status ASC, resolutiondate DESC')
    (issue,) = cloud.issues.values()
    f = issue.fields
    assert f["project"] == {"key": "DS"} and f["issuetype"] == {"name": "Bug"}
    assert f["summary"] == "[FIRING:1] DataDrift churn"
    assert f["priority"] == {"name": "High"}
    assert f["labels"] == sorted(["driftwatch", "team_data-science", dedup_label(GROUP)])
    doc = f["description"]
    check_adf(doc)  # the server checked it too; this fails loudly if it did not
    texts = [n["text"] for n in _walk(doc) if n.get("type") == "text"]
    assert "Input drift in 'age' of churn" in texts
    assert any(t.startswith("Why data-science") for t in texts)
    linked = {n["text"]: m["attrs"]["href"] for n in _walk(doc) if n.get("type") == "text"
              for m in n.get("marks", []) if m["type"] == "link"}
    assert linked == {"Runbook": a.annotations["runbook_url"],
                      "Dashboard": a.annotations["dashboard_url"]}
    assert cloud.calls[1].headers["Authorization"] == BASIC


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("content", []):
            yield from _walk(child)


def test_a_repeat_updates_the_issue_instead_of_filing_another(cloud: FakeJira) -> None:
    n = make(cloud)
    assert n.send([firing()], GROUP).ok
    second = copy.deepcopy(FIRING)
    second.labels["feature"] = "tenure_months"
    assert later(n).send([firing(), second], GROUP).ok
    assert len(cloud.issues) == 1
    assert cloud.api_calls()[-2:] == ["POST /rest/api/3/search/jql", "PUT /rest/api/3/issue/DS-1"]
    assert cloud.issues["DS-1"].fields["summary"] == "[FIRING:2] DataDrift churn"
    other = GroupInfo(GROUP.receiver, GROUP.group_key.replace("churn", "eta"), {})
    assert n.send([firing()], other).ok  # another group: its own issue
    assert len(cloud.issues) == 2


def test_other_fields_are_set_on_create_and_on_every_update(datacenter: FakeJira) -> None:
    """Custom fields and components, their strings rendered, as Alertmanager's ``fields``."""
    fields = {"customfield_10001": "{model} ({team})", "components": [{"name": "Models"}],
              "customfield_10002": {"value": "{severity}"}}
    n = make(datacenter, fields=fields)
    assert n.send([firing()], GROUP).ok, datacenter.errors
    f = datacenter.issues["DS-1"].fields
    assert f["customfield_10001"] == "churn (data-science)"
    assert f["components"] == [{"name": "Models"}]
    assert f["customfield_10002"] == {"value": "warning"}
    assert later(n).send([firing()], GROUP).ok, datacenter.errors
    assert datacenter.api_calls()[-1] == "PUT /rest/api/2/issue/DS-1"
    assert datacenter.calls[-1].body["fields"]["customfield_10001"] == "churn (data-science)"
    assert fields["customfield_10001"] == "{model} ({team})"  # the template is kept
    with pytest.raises(OptionError, match="'summary' is written by driftwatch"):
        make(datacenter, fields={"summary": "x"})
    # a field not on the screens: JIRA refuses it, a permanent failure with its answer
    other = GroupInfo(GROUP.receiver, GROUP.group_key.replace("churn", "eta"), {})
    result = make(datacenter, fields={"customfield_99999": "x"}).send([firing()], other)
    assert not result.ok and not result.retriable and result.status == 400, result
    assert "customfield_99999" in (result.error or ""), result.error


def test_resolve_transitions_and_a_refire_reopens_within_the_duration(cloud: FakeJira) -> None:
    n = make(cloud, **FULL)
    a = firing()
    assert n.send([a], GROUP).ok
    assert later(n).send([resolved(a)], GROUP).ok
    issue = cloud.issues["DS-1"]
    assert (issue.status, issue.resolution) == ("Done", "Done")
    assert cloud.api_calls()[-3:] == ["PUT /rest/api/3/issue/DS-1",
                                      "GET /rest/api/3/issue/DS-1/transitions",
                                      "POST /rest/api/3/issue/DS-1/transitions"]
    assert n.send([firing()], GROUP).ok
    assert len(cloud.issues) == 1 and issue.status == "To Do" and issue.resolution is None
    assert "resolutiondate >= -60m" in cloud.calls[-4].body["jql"]


def test_a_refire_after_the_reopen_duration_files_a_new_issue(cloud: FakeJira) -> None:
    n = make(cloud, **FULL)
    assert n.send([firing()], GROUP).ok
    cloud.resolve("DS-1", "Done", minutes_ago=61)
    assert n.send([firing()], GROUP).ok
    assert len(cloud.issues) == 2
    assert cloud.issues["DS-1"].status == "Done" and cloud.issues["DS-2"].status == "To Do"


def test_an_issue_resolved_as_wont_fix_is_left_alone(cloud: FakeJira) -> None:
    n = make(cloud, **FULL)
    assert n.send([firing()], GROUP).ok
    cloud.resolve("DS-1", "Won't Fix", minutes_ago=1)
    assert n.send([firing()], GROUP).ok
    assert cloud.issues["DS-1"].status == "Done"  # not reopened, not updated
    assert cloud.issues["DS-1"].resolution == "Won't Fix"
    assert [c for c in cloud.api_calls() if "DS-1" in c and not c.startswith("GET")] == []
    assert len(cloud.issues) == 2
    jql = [c for c in cloud.calls if c.path.endswith("/search/jql")][-1].body["jql"]
    assert jql.startswith("(resolution is EMPTY or resolution != \"Won't Fix\") and ")
    # without the reopen options, a done issue is never found: a new one is filed
    plain = make(cloud)
    cloud.resolve("DS-2", "Done")
    assert plain.send([firing()], GROUP).ok
    assert len(cloud.issues) == 3


def test_a_group_that_only_resolves_files_nothing(cloud: FakeJira) -> None:
    n = make(cloud, **FULL)
    assert n.send([resolved(firing())], GROUP).ok
    assert cloud.issues == {}
    quiet = make(cloud, send_resolved=False)
    assert quiet.send([firing()], GROUP).ok
    calls = len(cloud.calls)
    assert quiet.send([resolved(firing())], GROUP).ok
    assert len(cloud.calls) == calls  # send_resolved = false: not a single request
    assert cloud.issues["DS-1"].status == "To Do"


def test_datacenter_speaks_rest_v2_and_wiki_markup(datacenter: FakeJira) -> None:
    n = make(datacenter, **FULL)
    a = firing(runbook_url="https://wiki.example.com/rb/data_drift")
    assert n.send([a], GROUP).ok, datacenter.errors
    assert datacenter.api_calls() == ["POST /rest/api/2/search", "POST /rest/api/2/issue"]
    text = datacenter.issues["DS-1"].fields["description"]
    assert "h3. \\[FIRING\\] DataDrift · churn (feature=age)" in text
    assert "[Runbook|https://wiki.example.com/rb/data_drift]" in text
    assert "* *Evidence:* detector=ks" in text
    assert datacenter.calls[0].headers["Authorization"] == f"Bearer {PAT}"
    assert later(n).send([resolved(a)], GROUP).ok
    assert datacenter.issues["DS-1"].status == "Done"


def test_the_old_search_endpoint_answers_410_and_the_error_says_what_to_fix(
    cloud: FakeJira,
) -> None:
    n = make(cloud, api_type="datacenter")
    n._auth = {"Authorization": BASIC}  # the right credentials, the wrong API
    result = n.send([firing()], GROUP)
    assert not result.ok and not result.retriable and result.status == 410
    assert "api_type" in result.error
    assert cloud.issues == {}


def test_api_type_auto_and_a_rest_base_url() -> None:
    cloud = JiraNotifier({"api_url": "https://acme.atlassian.net/rest/api/2", "project": "DS",
                          "issue_type": "Bug"}, "r")
    assert cloud.cloud and cloud.api == "https://acme.atlassian.net/rest/api/3"
    dc = JiraNotifier({"api_url": "https://jira.acme.internal/", "project": "DS",
                       "issue_type": "Bug"}, "r")
    assert not dc.cloud and dc.api == "https://jira.acme.internal/rest/api/2"


def test_issues_created_before_the_search_index_sees_them_are_not_duplicated(
    cloud: FakeJira,
) -> None:
    cloud.index_lag = True
    n = make(cloud)
    assert n.send([firing()], GROUP).ok
    assert n.send([firing()], GROUP).ok
    assert len(cloud.issues) == 1
    assert cloud.api_calls()[-3:] == ["POST /rest/api/3/search/jql", "GET /rest/api/3/issue/DS-1",
                                      "PUT /rest/api/3/issue/DS-1"]


def _dispatcher(n: JiraNotifier, clock: Clock) -> Dispatcher:
    return Dispatcher(RouteTree(RouteConfig(receiver="data-science", group_wait=0.0)),
                      {"data-science": [n]}, Inhibitor(), MemoryOutbox(), clock=clock)


@pytest.mark.parametrize("lost_answer", [False, True])
def test_failures_are_retried_through_the_outbox_without_duplicates(
    cloud: FakeJira, lost_answer: bool
) -> None:
    clock = Clock()
    d = _dispatcher(make(cloud), clock)
    cloud.fail("POST /rest/api/3/issue", 503, apply=lost_answer)
    alerts = [firing()]
    d.submit(alerts, alerts)
    d.deliver_due()
    assert len(cloud.issues) == (1 if lost_answer else 0)
    clock.advance(5.0)  # past the first backoff (at most 1 s)
    d.deliver_due()
    assert len(cloud.issues) == 1
    assert cloud.api_calls().count("POST /rest/api/3/issue") == (1 if lost_answer else 2)


def test_a_missing_transition_is_a_clear_permanent_error(cloud: FakeJira) -> None:
    n = make(cloud, resolve_transition="Close Issue")
    assert n.send([firing()], GROUP).ok
    result = n.send([resolved(firing())], GROUP)
    assert not result.ok and not result.retriable
    assert "no transition named 'Close Issue'" in result.error


def test_credentials_never_appear_in_errors(cloud: FakeJira) -> None:
    n = make(cloud, api_token="wrong-" + TOKEN)
    result = n.send([firing()], GROUP)
    assert not result.ok and result.status == 401
    assert TOKEN not in result.error and "Basic" not in result.error
    assert "JiraNotifier" in repr(n) and TOKEN not in repr(n)


# -- config ----------------------------------------------------------------------------


def _jira_config(**jira: Any) -> dict[str, Any]:
    return {"receivers": [{"name": "ds", "jira": [jira]}], "route": {"receiver": "ds"}}


def test_config_builds_a_jira_notifier_from_env_secrets(cloud: FakeJira) -> None:
    config, problems = validate(
        _jira_config(api_url=cloud.url, api_type="cloud", project="DS", issue_type="Task",
                     user=USER, api_token_env="JIRA_TOKEN", summary="{alertname} on {model}",
                     labels=["model-{model}"], reopen_transition="Reopen",
                     reopen_duration="30m", send_resolved=False),
        env={"JIRA_TOKEN": TOKEN})
    assert config is not None, problems.errors
    (n,) = build_notifiers(config.receivers)["ds"]
    assert isinstance(n, JiraNotifier) and n.reopen_duration == 1800.0 and not n.send_resolved
    assert n.send([firing()], GROUP).ok
    assert cloud.issues["DS-1"].fields["summary"] == "DataDrift on churn"
    assert "model-churn" in cloud.issues["DS-1"].fields["labels"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"api_url": "https://x.atlassian.net", "issue_type": "Bug"},
         "receivers[0].jira[0].project: required: the project key"),
        ({"api_url": "x", "project": "DS", "issue_type": "Bug"},
         "receivers[0].jira[0].api_url: must be an http:// or https:// URL"),
        ({"api_url": "https://x", "project": "DS", "issue_type": "Bug", "summary": "{nope}"},
         "receivers[0].jira[0].summary: unknown placeholder {nope}"),
        ({"api_url": "https://x", "project": "DS", "issue_type": "Bug", "user": "u"},
         "receivers[0].jira[0].api_token: required with user"),
        ({"api_url": "https://x", "project": "DS", "issue_type": "Bug", "api_type": "server"},
         "receivers[0].jira[0].api_type: must be one of"),
        ({"api_url": "https://x", "project": "DS", "issue_type": "Bug", "url": "https://x"},
         "receivers[0].jira[0].url: unknown key (the JIRA address is api_url)"),
        ({"api_url": "https://x", "project": "DS", "issue_type": "Bug",
          "reopen_transition": "Reopen", "reopen_duration": "10s"},
         "receivers[0].jira[0].reopen_duration: must be at least 1m"),
        ({"api_url": "https://x", "project": "DS", "issue_type": "Bug",
          "fields": {"summary": "{model}"}},
         "receivers[0].jira[0].fields: summary: driftwatch writes it itself"),
        ({"api_url": "https://x", "project": "DS", "issue_type": "Bug",
          "fields": {"components": [{"name": "{nope}"}]}},
         "receivers[0].jira[0].fields: components[0].name: unknown placeholder {nope}"),
        ({"api_url": "https://x", "project": "DS", "issue_type": "Bug",
          "fields": {"custom field": 1}},
         "receivers[0].jira[0].fields: 'custom field' is not a JIRA field id"),
    ],
)
def test_config_errors_name_the_key(options: dict[str, Any], error: str) -> None:
    config, problems = validate(_jira_config(**options), env={})
    assert config is None
    assert any(e.startswith(error) for e in problems.errors), problems.errors


def test_the_example_configs_jira_block_is_valid_when_switched_on() -> None:
    text = (Path(__file__).resolve().parents[2] / "config.toml").read_text()
    switched = uncommented(text, "# [[receivers.jira]]")
    assert switched != text
    config, problems = validate(tomllib.loads(switched), env={"DS_JIRA_API_TOKEN": TOKEN})
    assert config is not None, problems.errors
    (ds,) = [r for r in config.receivers if r.name == "data-science"]
    (jira,) = [i for i in ds.integrations if i.kind == "jira"]
    assert jira.options["project"] == "DS" and jira.options["reopen_duration"] == 86400.0
    n = build_notifiers(config.receivers)["data-science"][-1]
    assert isinstance(n, JiraNotifier) and n.cloud
