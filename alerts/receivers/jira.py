"""JIRA: one issue per alert group, with the semantics of Alertmanager's ``jira_configs``.

Each notification of a group:

1. searches the project by JQL for the group's issue, found again by the
   label ``ALERT{<sha256 of receiver and group key>}`` (Cloud:
   ``POST /rest/api/3/search/jql`` -- the old ``/search`` answers 410 there;
   Data Center: ``POST /rest/api/2/search``).  The search skips issues resolved
   as ``wont_fix_resolution``; while the group fires it also finds issues
   resolved within ``reopen_duration`` (when a ``reopen_transition`` is set),
   otherwise only open ones (``statusCategory != Done``);
2. creates the issue (``POST /issue``) when none is found and the group
   fires -- a group that only resolves creates nothing -- or updates it
   (``PUT /issue/{key}``: summary, description, labels, priority) instead of
   filing a duplicate;
3. transitions it: a firing group whose issue is done takes
   ``reopen_transition``; a resolved group whose issue is open takes
   ``resolve_transition`` (``GET`` then ``POST /issue/{key}/transitions``, the
   transition found by name).  An issue resolved as won't-fix is never found,
   so never reopened: a new alert group after it files a new issue.

Cloud (``api_type = "cloud"``, or ``"auto"`` on ``*.atlassian.net``) speaks
REST v3 with the description in Atlassian Document Format; Data Center speaks
REST v2 with wiki markup.  Authentication: ``user`` (the account's email on
Cloud) with ``api_token`` as basic auth, or ``bearer_token`` (a Data Center
personal access token).

The steps are idempotent, so a failed step is retried from the top by the
outbox: the search finds the issue a lost answer created.  Jira's search index
can lag a create by a few seconds, so the notifier also remembers the issues it
created in the last :data:`INDEX_LAG` seconds (for at most :data:`REMEMBERED`
groups) and checks one directly (``GET /issue/{key}``) when the search misses it.

``fields`` sets other issue fields, custom ones included, on create and on
every update, as Alertmanager's ``fields`` does: a table of field ids to JSON
values (``customfield_10001 = "{model}"``, ``components = [{ name = "ML" }]``);
every string in it is a template.  The fields driftwatch writes itself
(project, issue type, summary, description, labels, priority) have their own keys.

Templates (``summary``, ``description``, ``labels``, ``priority``, the strings
of ``fields``) take ``{label}`` placeholders from the labels every alert of the group shares,
plus ``{status}`` (FIRING / RESOLVED), ``{firing}`` and ``{resolved}`` (counts)
and ``{receiver}``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from alerts.links import render
from alerts.model import Alert
from alerts.receivers.base import (
    DeliveryResult,
    GroupInfo,
    OptionError,
    optional_str,
    required_str,
    seconds,
)
from alerts.receivers.http import redact_url, request_json
from alerts.receivers.jira_text import (
    adf_description,
    default_summary,
    intro,
    jira_label,
    template_values,
    wiki_description,
)
from alerts.receivers.text import cut

API_TYPES = ("auto", "cloud", "datacenter")
SUMMARY_CHARS = 255
REMEMBERED = 1_000
INDEX_LAG = 120.0  # seconds a created issue may stay invisible to the search
SEARCH_FIELDS = ["status", "resolution", "resolutiondate", "labels"]
# the issue fields driftwatch writes itself: ``fields`` may not set them
OWN_FIELDS = ("project", "issuetype", "summary", "description", "labels", "priority")
_REST_SUFFIX = re.compile(r"/rest/api/(2|3|latest)/?$")


def dedup_label(group: GroupInfo) -> str:
    """The label that finds a group's issue again: ``ALERT{<sha256>}``."""
    digest = hashlib.sha256(f"{group.receiver}:{group.group_key}".encode()).hexdigest()
    return f"ALERT{{{digest}}}"


# -- the notifier ---------------------------------------------------------------------


def _site(api_url: str) -> str:
    """The site base of ``api_url``, given as the site or as its ``/rest/api/N`` base."""
    return _REST_SUFFIX.sub("", api_url.rstrip("/")).rstrip("/")


def _string_list(options: Mapping[str, object], name: str, receiver: str) -> tuple[str, ...]:
    value = options.get(name, ())
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise OptionError(receiver, "jira", name, "must be a list of strings")
    return tuple(value)


def _render_deep(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` (a field's JSON value) with every string in it rendered."""
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, Mapping):
        return {k: _render_deep(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_render_deep(v, values) for v in value]
    return value


def _extra_fields(options: Mapping[str, object], receiver: str) -> dict[str, Any]:
    value = options.get("fields") or {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise OptionError(receiver, "jira", "fields", "must be a table of field ids to values")
    own = sorted(set(value) & set(OWN_FIELDS))
    if own:
        raise OptionError(receiver, "jira", "fields",
                          f"{own[0]!r} is written by driftwatch (its own key sets it)")
    return dict(value)


class _Failed(Exception):
    def __init__(self, result: DeliveryResult) -> None:
        self.result = result


class JiraNotifier:
    name = "jira"

    def __init__(self, options: Mapping[str, object], receiver: str = "") -> None:
        kind = self.name
        api_url = required_str(options, "api_url", receiver, kind)
        api_type = optional_str(options, "api_type", "auto") or "auto"
        if api_type not in API_TYPES:
            raise OptionError(receiver, kind, "api_type", f"must be one of {', '.join(API_TYPES)}")
        if api_type == "auto":
            host = urlsplit(api_url).hostname or ""
            api_type = "cloud" if host.endswith(".atlassian.net") else "datacenter"
        self.cloud = api_type == "cloud"
        self.site = _site(api_url)
        self.api = f"{self.site}/rest/api/{3 if self.cloud else 2}"
        self.project = required_str(options, "project", receiver, kind)
        self.issue_type = required_str(options, "issue_type", receiver, kind)
        self.summary = optional_str(options, "summary")
        self.description = optional_str(options, "description")
        self.labels = _string_list(options, "labels", receiver)
        self.priority = optional_str(options, "priority")
        self.extra_fields = _extra_fields(options, receiver)
        self.resolve_transition = optional_str(options, "resolve_transition")
        self.reopen_transition = optional_str(options, "reopen_transition")
        self.wont_fix_resolution = optional_str(options, "wont_fix_resolution")
        self.reopen_duration = (
            seconds(options, "reopen_duration", 1.0, receiver, kind)
            if options.get("reopen_duration") is not None else None)
        self.send_resolved = bool(options.get("send_resolved", True))
        self.timeout = seconds(options, "timeout", 10.0, receiver, kind)
        user = optional_str(options, "user")
        token = optional_str(options, "api_token")
        bearer = optional_str(options, "bearer_token")
        if bearer and (token or user):
            raise OptionError(
                receiver, kind, "bearer_token", "cannot be given with user/api_token")
        if bool(user) != bool(token):
            raise OptionError(receiver, kind, "api_token", "and user are given together")
        self._secrets: tuple[str, ...] = ()
        self._auth: dict[str, str] = {}
        if bearer:
            self._auth = {"Authorization": f"Bearer {bearer}"}
            self._secrets = (bearer,)
        elif user and token:
            basic = base64.b64encode(f"{user}:{token}".encode()).decode()
            self._auth = {"Authorization": f"Basic {basic}"}
            self._secrets = (token, basic)
        # dedup label -> (issue key, when created): issues the search may not show yet
        self._created: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._clock = time.monotonic

    # -- HTTP --------------------------------------------------------------------------
    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        """The decoded JSON answer (None for an empty one); raises _Failed."""
        result, body = request_json(
            method, f"{self.api}/{path}", payload, timeout=self.timeout, secrets=self._secrets,
            headers={"Accept": "application/json", **self._auth},
            max_body=4 * 1024 * 1024,
        )
        if not result.ok:
            if result.status == 410 and "search" in path:
                result = DeliveryResult(
                    ok=False, retriable=False, status=410,
                    error=f"{result.error} (this JIRA has no {path} endpoint: check api_type)")
            raise _Failed(result)
        if not body.strip():
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Failed(DeliveryResult(
                ok=False, retriable=True, status=result.status,
                error=f"{method} {path}: the answer from {redact_url(self.api)} is not JSON",
            )) from None

    # -- steps -------------------------------------------------------------------------
    def jql(self, label: str, firing: bool) -> str:
        """Alertmanager's search: the group's issue, open (or recently resolved)."""
        parts = []
        if self.wont_fix_resolution:
            wont_fix = _quote(self.wont_fix_resolution)
            parts.append(f"(resolution is EMPTY or resolution != {wont_fix})")
        minutes = int(self.reopen_duration // 60) if self.reopen_duration else 0
        if firing and self.reopen_transition and minutes > 0:
            parts.append(f"(resolutiondate is EMPTY or resolutiondate >= -{minutes}m)")
        else:
            parts.append("statusCategory != Done")
        parts.append(f"project = {_quote(self.project)}")
        parts.append(f"labels = {_quote(label)}")
        return " and ".join(parts) + " order by status ASC, resolutiondate DESC"

    def search(self, label: str, firing: bool) -> dict[str, Any] | None:
        body = {"jql": self.jql(label, firing), "maxResults": 2, "fields": SEARCH_FIELDS}
        answer = self._call("POST", "search/jql" if self.cloud else "search", body)
        issues = answer.get("issues") if isinstance(answer, dict) else None
        if isinstance(issues, list) and issues and isinstance(issues[0], dict):
            return issues[0]
        key, created = self._created.get(label, ("", -INDEX_LAG))
        if self._clock() - created >= INDEX_LAG:  # no issue of ours the index may miss
            return None
        try:
            issue = self._call("GET", f"issue/{quote(key)}?fields={','.join(SEARCH_FIELDS)}")
        except _Failed as failed:
            if failed.result.status == 404:
                self._created.pop(label, None)
                return None
            raise
        if isinstance(issue, dict) and not _done(issue):
            return issue
        return None

    def fields(self, alerts: Sequence[Alert], group: GroupInfo, label: str) -> dict[str, Any]:
        values = template_values(alerts, group)
        summary = render(self.summary, values) if self.summary else default_summary(alerts, group)
        lead = render(self.description, values) if self.description else intro(alerts, group)
        description: Any = (adf_description(alerts, group, lead) if self.cloud
                            else wiki_description(alerts, group, lead))
        labels = {jira_label(render(t, values)) for t in self.labels} | {label}
        out: dict[str, Any] = {
            "summary": cut(" ".join(summary.split()), SUMMARY_CHARS),
            "description": description,
            "labels": sorted(x for x in labels if x),
        }
        if self.priority and (priority := render(self.priority, values).strip()):
            out["priority"] = {"name": priority}
        out.update(_render_deep(self.extra_fields, values))
        return out

    def transition(self, key: str, name: str) -> None:
        answer = self._call("GET", f"issue/{quote(key)}/transitions")
        found = [t for t in (answer or {}).get("transitions", [])
                 if isinstance(t, dict) and t.get("name") == name]
        if not found:
            raise _Failed(DeliveryResult(
                ok=False, retriable=False,
                error=f"JIRA issue {key} has no transition named {name!r} in its state"))
        self._call("POST", f"issue/{quote(key)}/transitions",
                   {"transition": {"id": str(found[0].get("id"))}})

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        firing = any(a.status == "firing" for a in alerts)
        if not firing and not self.send_resolved:
            return DeliveryResult.success()
        shown = alerts if self.send_resolved else [a for a in alerts if a.status == "firing"]
        label = dedup_label(group)
        try:
            issue = self.search(label, firing)
            if issue is None:
                if not firing:
                    return DeliveryResult.success()  # nothing to resolve
                fields = self.fields(shown, group, label)
                fields.update(project={"key": self.project}, issuetype={"name": self.issue_type})
                created = self._call("POST", "issue", {"fields": fields})
                if isinstance(created, dict) and created.get("key"):
                    self._created[label] = (str(created["key"]), self._clock())
                    self._created.move_to_end(label)
                    while len(self._created) > REMEMBERED:
                        self._created.popitem(last=False)
                return DeliveryResult.success(201)
            key = str(issue.get("key", ""))
            self._call("PUT", f"issue/{quote(key)}", {"fields": self.fields(shown, group, label)})
            done = _done(issue)
            if firing and done and self.reopen_transition:
                self.transition(key, self.reopen_transition)
            elif not firing and not done and self.resolve_transition:
                self.transition(key, self.resolve_transition)
        except _Failed as failed:
            return failed.result
        return DeliveryResult.success()

    def __repr__(self) -> str:
        return f"JiraNotifier(api={redact_url(self.api)!r}, project={self.project!r})"


def _done(issue: Mapping[str, Any]) -> bool:
    status = (issue.get("fields") or {}).get("status") or {}
    return bool((status.get("statusCategory") or {}).get("key") == "done")


def _quote(text: str) -> str:
    """A JQL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
