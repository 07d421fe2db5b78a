"""Routing tables: {labels -> receivers} over a tree with nesting, continue and inheritance."""

from __future__ import annotations

import pytest

from alerts.config import DEFAULT_ROUTE, RouteConfig
from alerts.routing import RouteTree, group_key

CONFIG = RouteConfig(
    receiver="mle",
    group_by=("alertname", "model"),
    group_wait=30.0,
    group_interval=300.0,
    repeat_interval=14400.0,
    routes=(
        RouteConfig(matchers=('severity="critical"',), receiver="pager", continue_=True),
        RouteConfig(
            matchers=('team="data-science"',),
            receiver="ds",
            group_by=("alertname", "model", "feature"),
            routes=(
                RouteConfig(matchers=('model="churn"', 'kind="data_drift"'), receiver="churn-ds"),
                RouteConfig(matchers=('model=~"fraud.*"',), receiver="fraud-ds", continue_=True),
                RouteConfig(matchers=('model=~"fraud-(eu|us)"',), group_wait=5.0),
            ),
        ),
        RouteConfig(
            matchers=('team="ml-engineering"',),
            routes=(
                RouteConfig(
                    matchers=('kind=~"latency_regression|error_rate"',), receiver="serving"
                ),
                RouteConfig(matchers=('kind="data_quality"',), receiver="data-eng", continue_=True),
                RouteConfig(
                    matchers=('kind=~"data_quality|schema_violation"',), receiver="pipeline"
                ),
            ),
        ),
        RouteConfig(matchers=('team="data-science"',), receiver="shadowed"),
    ),
)

DS = {"team": "data-science"}
MLE = {"team": "ml-engineering"}


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({}, ["mle"]),
        ({"team": "nobody"}, ["mle"]),
        ({**DS, "model": "churn", "kind": "data_drift"}, ["churn-ds"]),
        ({**DS, "model": "churn", "kind": "prediction_drift"}, ["ds"]),
        ({**DS, "model": "fraud-eu"}, ["fraud-ds", "ds"]),  # continue, then inherited receiver
        ({**DS, "model": "fraud-apac"}, ["fraud-ds"]),
        ({**DS, "model": "fraud-us", "severity": "critical"}, ["pager", "fraud-ds", "ds"]),
        (
            {**DS, "model": "churn", "kind": "data_drift", "severity": "critical"},
            ["pager", "churn-ds"],
        ),
        ({"severity": "critical"}, ["pager"]),  # a continue match still counts as a match
        ({**MLE, "kind": "latency_regression", "severity": "critical"}, ["pager", "serving"]),
        ({**MLE, "kind": "error_rate"}, ["serving"]),
        ({**MLE, "kind": "data_quality"}, ["data-eng", "pipeline"]),
        ({**MLE, "kind": "schema_violation"}, ["pipeline"]),
        ({**MLE, "kind": "traffic_drop"}, ["mle"]),  # no child: the node, receiver inherited
        ({**MLE, "kind": "latency_regression_p99"}, ["mle"]),  # regexes are anchored
    ],
)
def test_receivers_for(labels: dict[str, str], receivers: list[str]) -> None:
    assert RouteTree(CONFIG).receivers_for(labels) == receivers


def test_children_inherit_and_override() -> None:
    tree = RouteTree(CONFIG)
    (route,) = [r for r in tree.match({**DS, "model": "fraud-eu"}) if r.receiver == "ds"]
    assert route.group_by == ("alertname", "model", "feature")  # from its parent
    assert (route.group_wait, route.group_interval, route.repeat_interval) == (5.0, 300.0, 14400.0)
    (serving,) = tree.match({**MLE, "kind": "error_rate"})
    assert serving.group_by == ("alertname", "model")
    assert serving.group_wait == 30.0


def test_root_defaults_come_from_default_route() -> None:
    tree = RouteTree(RouteConfig(routes=(RouteConfig(matchers=('a="1"',)),)))
    (root,) = tree.match({})
    assert root.receiver == DEFAULT_ROUTE.receiver
    assert root.group_by == DEFAULT_ROUTE.group_by
    assert root.group_wait == DEFAULT_ROUTE.group_wait
    assert root.repeat_interval == DEFAULT_ROUTE.repeat_interval
    assert tree.receivers_for({"a": "1"}) == [DEFAULT_ROUTE.receiver]
    assert RouteTree().receivers_for({"model": "churn"}) == ["default"]


def test_paths_are_stable_and_group_key_is_alertmanager_shaped() -> None:
    tree = RouteTree(CONFIG)
    labels = {
        **DS,
        "alertname": "DataDrift",
        "model": "churn",
        "kind": "data_drift",
        "feature": "age",
        "fault": "model",
    }
    (route,) = tree.match(labels)
    assert route.key == '{}/{team="data-science"}/{model="churn",kind="data_drift"}'
    # the shadowed sibling has the same matchers: the path carries the position to stay unique
    assert route.path == '{}/{team="data-science"}/1/{model="churn",kind="data_drift"}'
    assert group_key(route, labels) == (
        '{}/{team="data-science"}/{model="churn",kind="data_drift"}:'
        '{alertname="DataDrift", feature="age", model="churn"}'
    )
    assert route.group_labels(labels) == {
        "alertname": "DataDrift",
        "model": "churn",
        "feature": "age",
    }
    assert RouteTree(CONFIG).match(labels)[0].path == route.path  # rebuilt: same path
    assert [r.path for r in tree.walk()][:2] == ["{}", '{}/{severity="critical"}']


def test_group_key_of_one_level_route() -> None:
    tree = RouteTree(
        RouteConfig(
            receiver="mle", routes=(RouteConfig(matchers=('team="data-science"',), receiver="ds"),)
        )
    )
    labels = {"team": "data-science", "alertname": "DataDrift", "model": "churn"}
    (route,) = tree.match(labels)
    assert group_key(route, labels) == (
        '{}/{team="data-science"}:{alertname="DataDrift", model="churn"}'
    )


def test_group_by_all_labels_and_missing_labels() -> None:
    tree = RouteTree(RouteConfig(receiver="r", group_by=("...",)))
    (route,) = tree.match({"b": "2", "a": "1"})
    assert group_key(route, {"b": "2", "a": "1"}) == '{}:{a="1", b="2"}'
    (plain,) = RouteTree().match({})
    assert group_key(plain, {"model": "churn"}) == '{}:{model="churn"}'  # alertname missing


def test_sibling_routes_with_equal_matchers_get_distinct_paths() -> None:
    tree = RouteTree(
        RouteConfig(
            receiver="r",
            routes=(
                RouteConfig(matchers=('a="1"',), receiver="x", continue_=True),
                RouteConfig(matchers=('a="1"',), receiver="y"),
            ),
        )
    )
    routes = tree.match({"a": "1"})
    assert [r.receiver for r in routes] == ["x", "y"]
    assert routes[0].path != routes[1].path
    assert routes[0].key == routes[1].key == '{}/{a="1"}'
