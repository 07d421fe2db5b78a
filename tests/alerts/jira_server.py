"""A small JIRA on 127.0.0.1: the REST endpoints the JIRA receiver uses, checked strictly.

* ``cloud=True``: REST v3 -- ``POST /rest/api/3/search/jql`` (the old
  ``/rest/api/{2,3}/search`` answer 410 Gone, as on Jira Cloud since 2025), issue
  descriptions must be valid Atlassian Document Format documents;
* ``cloud=False`` (Data Center): REST v2 -- ``POST /rest/api/2/search``,
  descriptions are wiki-markup strings, v3 answers 404.

Both: ``POST /issue`` (201), ``PUT /issue/{key}`` (204), ``GET /issue/{key}``,
``GET``/``POST /issue/{key}/transitions``, an ``Authorization`` header that must
match, other fields only where on the screens (``screen_fields``, shapes
checked), and a JQL evaluator for the grammar the receiver writes (``and``,
parenthesised ``or``, ``=``, ``!=``, ``>=`` on relative minutes, ``is EMPTY``;
like Jira, ``!=`` never matches an empty field).  The workflow: To Do
(new) -> Done (transition "Done", resolution Done) -> To Do (transition
"Reopen").  A test can fail the next requests on purpose (``fail``), set an
issue's resolution and resolution date, and hide new issues from search
(``index_lag``) as Jira's search index does for a moment.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson

STATUSES = {"To Do": "new", "Done": "done"}
TRANSITIONS = {  # from status category -> [(id, name, to status, resolution)]
    "new": [("31", "Done", "Done", "Done")],
    "done": [("41", "Reopen", "To Do", None)],
}


@dataclass
class Issue:
    key: str
    fields: dict[str, Any]
    status: str = "To Do"
    resolution: str | None = None
    resolutiondate: float | None = None
    created: float = field(default_factory=time.time)
    indexed: bool = True

    def view(self) -> dict[str, Any]:
        return {
            "id": self.key.split("-")[1],
            "key": self.key,
            "fields": {
                "status": {"name": self.status,
                           "statusCategory": {"key": STATUSES[self.status]}},
                "resolution": {"name": self.resolution} if self.resolution else None,
                "resolutiondate": self.resolutiondate,
                "labels": list(self.fields.get("labels", [])),
            },
        }


# -- ADF -------------------------------------------------------------------------------

MARKS = {"strong", "em", "code", "link"}
BLOCKS = {"paragraph", "heading", "bulletList", "orderedList", "rule", "codeBlock"}


def check_adf(doc: Any) -> None:
    """Raise ValueError (with a path) unless ``doc`` is a valid ADF document."""
    _keys(doc, "doc", {"type", "version", "content"}, {"type", "version", "content"})
    if doc["type"] != "doc" or doc["version"] != 1:
        raise ValueError("doc: type must be 'doc' and version 1")
    _blocks(doc["content"], "doc.content")


def _keys(node: Any, path: str, allowed: set[str], required: set[str]) -> None:
    if not isinstance(node, dict):
        raise ValueError(f"{path}: must be an object")
    if extra := set(node) - allowed:
        raise ValueError(f"{path}: unknown keys {sorted(extra)}")
    if missing := required - set(node):
        raise ValueError(f"{path}: missing {sorted(missing)}")


def _blocks(content: Any, path: str) -> None:
    if not isinstance(content, list):
        raise ValueError(f"{path}: must be an array")
    for i, node in enumerate(content):
        _block(node, f"{path}[{i}]")


def _block(node: Any, path: str) -> None:
    kind = node.get("type") if isinstance(node, dict) else None
    if kind not in BLOCKS:
        raise ValueError(f"{path}: not a block node: {kind!r}")
    if kind == "paragraph":
        _keys(node, path, {"type", "content"}, {"type"})
        _inline(node.get("content", []), f"{path}.content")
    elif kind == "heading":
        _keys(node, path, {"type", "attrs", "content"}, {"type", "attrs"})
        _keys(node["attrs"], f"{path}.attrs", {"level"}, {"level"})
        if node["attrs"]["level"] not in range(1, 7):
            raise ValueError(f"{path}.attrs.level: must be 1..6")
        _inline(node.get("content", []), f"{path}.content")
    elif kind in ("bulletList", "orderedList"):
        _keys(node, path, {"type", "content", "attrs"}, {"type", "content"})
        items = node["content"]
        if not isinstance(items, list) or not items:
            raise ValueError(f"{path}.content: a list needs at least one listItem")
        for i, item in enumerate(items):
            _keys(item, f"{path}.content[{i}]", {"type", "content"}, {"type", "content"})
            if item["type"] != "listItem" or not item["content"]:
                raise ValueError(f"{path}.content[{i}]: must be a non-empty listItem")
            _blocks(item["content"], f"{path}.content[{i}].content")
    elif kind == "rule":
        _keys(node, path, {"type"}, {"type"})
    else:  # codeBlock
        _keys(node, path, {"type", "content", "attrs"}, {"type"})
        for i, t in enumerate(node.get("content", [])):
            if t.get("type") != "text" or t.get("marks"):
                raise ValueError(f"{path}.content[{i}]: unmarked text only")


def _inline(content: Any, path: str) -> None:
    if not isinstance(content, list):
        raise ValueError(f"{path}: must be an array")
    for i, node in enumerate(content):
        p = f"{path}[{i}]"
        if isinstance(node, dict) and node.get("type") == "hardBreak":
            _keys(node, p, {"type"}, {"type"})
            continue
        _keys(node, p, {"type", "text", "marks"}, {"type", "text"})
        if node["type"] != "text":
            raise ValueError(f"{p}: not an inline node: {node['type']!r}")
        if not isinstance(node["text"], str) or not node["text"]:
            raise ValueError(f"{p}.text: must be a non-empty string")
        seen = set()
        for j, mark in enumerate(node.get("marks", [])):
            mp = f"{p}.marks[{j}]"
            _keys(mark, mp, {"type", "attrs"}, {"type"})
            if mark["type"] not in MARKS or mark["type"] in seen:
                raise ValueError(f"{mp}: unknown or repeated mark {mark['type']!r}")
            seen.add(mark["type"])
            if mark["type"] == "link":
                _keys(mark.get("attrs"), f"{mp}.attrs", {"href", "title"}, {"href"})
                href = urlsplit(mark["attrs"]["href"])
                if href.scheme not in ("http", "https") or not href.netloc:
                    raise ValueError(f"{mp}.attrs.href: must be an absolute http(s) URL")
            elif "attrs" in mark:
                raise ValueError(f"{mp}: {mark['type']} takes no attrs")


# -- JQL -------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(\(|\)|,|!=|>=|=|"(?:[^"\\]|\\.)*"|[A-Za-z_][\w]*|-\d+m)')


def _tokens(jql: str) -> list[str]:
    out, pos = [], 0
    while pos < len(jql.rstrip()):
        m = _TOKEN.match(jql, pos)
        if m is None:
            raise ValueError(f"JQL syntax error at {pos}: {jql[pos:pos + 20]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


class _Jql:
    """Parses ``clause (and clause)* [order by ...]`` where a clause may be ``( ... or ... )``."""

    def __init__(self, jql: str, now: float) -> None:
        self.toks = _tokens(jql)
        self.i = 0
        self.now = now
        self.tree = self._and()
        rest = [t.lower() for t in self.toks[self.i:self.i + 2]]
        if self.i < len(self.toks) and rest != ["order", "by"]:
            raise ValueError(f"JQL: unexpected {self.toks[self.i]!r}")

    def _peek(self) -> str:
        return self.toks[self.i] if self.i < len(self.toks) else ""

    def _next(self) -> str:
        tok = self._peek()
        self.i += 1
        return tok

    def _and(self) -> Any:
        parts = [self._or()]
        while self._peek().lower() == "and":
            self._next()
            parts.append(self._or())
        return ("and", parts)

    def _or(self) -> Any:
        parts = [self._atom()]
        while self._peek().lower() == "or":
            self._next()
            parts.append(self._atom())
        return ("or", parts)

    def _atom(self) -> Any:
        if self._peek() == "(":
            self._next()
            inner = self._and()
            if self._next() != ")":
                raise ValueError("JQL: missing )")
            return inner
        name, op = self._next(), self._next()
        if op.lower() == "is":
            if self._next() != "EMPTY":
                raise ValueError("JQL: only 'is EMPTY' is supported")
            return ("empty", name)
        value = self._next()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        return ("cmp", name, op, value)

    def match(self, issue: Issue, project: str) -> bool:
        return self._eval(self.tree, issue, project)

    def _value(self, name: str, issue: Issue, project: str) -> Any:
        return {
            "project": project,
            "labels": issue.fields.get("labels", []),
            "statusCategory": {"new": "To Do", "done": "Done"}[STATUSES[issue.status]],
            "resolution": issue.resolution,
            "resolutiondate": issue.resolutiondate,
        }[name]

    def _eval(self, node: Any, issue: Issue, project: str) -> bool:
        if node[0] == "and":
            return all(self._eval(n, issue, project) for n in node[1])
        if node[0] == "or":
            return any(self._eval(n, issue, project) for n in node[1])
        if node[0] == "empty":
            return self._value(node[1], issue, project) in (None, [], "")
        _, name, op, want = node
        have = self._value(name, issue, project)
        if have is None:
            return False  # like Jira: no comparison matches an empty field
        if op == ">=":
            minutes = int(want.rstrip("m"))  # "-60m"
            return float(have) >= self.now + minutes * 60
        hit = want in have if isinstance(have, list) else str(have) == want
        return hit if op == "=" else not hit


# -- the server ------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeJira:
    def __init__(self, *, cloud: bool, authorization: str) -> None:
        self.cloud = cloud
        self.authorization = authorization
        self.project = "DS"
        # other fields on the project's create and edit screens (JIRA refuses the rest),
        # with a check of each value's shape
        self.screen_fields: dict[str, Any] = {
            "components": lambda v: isinstance(v, list) and all(
                isinstance(c, dict) and set(c) == {"name"} and isinstance(c["name"], str)
                for c in v),
            "customfield_10001": lambda v: isinstance(v, str),
            "customfield_10002": lambda v: isinstance(v, dict) and set(v) == {"value"},
        }
        self.issues: dict[str, Issue] = {}
        self.calls: list[Call] = []
        self.failures: list[tuple[str, int, bool]] = []  # (method path prefix, status, apply)
        self.index_lag = False
        self.now = time.time
        self.errors: list[str] = []  # what the server refused, for the test's messages
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = orjson.loads(raw) if raw else None
                with fake._lock:
                    fake.calls.append(Call(method, self.path, dict(self.headers), body))
                    status, answer = fake._route(method, self.path, dict(self.headers), body)
                out = b"" if answer is None else orjson.dumps(answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._handle("PUT")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail(self, prefix: str, status: int, *, apply: bool = False) -> None:
        """Answer the next request starting with ``prefix`` ("POST /issue") with ``status``;
        ``apply``: carry the request out first (the answer is lost, not the work)."""
        self.failures.append((prefix, status, apply))

    def resolve(self, key: str, resolution: str, minutes_ago: float = 0.0) -> None:
        issue = self.issues[key]
        issue.status, issue.resolution = "Done", resolution
        issue.resolutiondate = self.now() - minutes_ago * 60

    def api_calls(self) -> list[str]:
        return [f"{c.method} {urlsplit(c.path).path}" for c in self.calls]

    # -- routing (under the lock) --------------------------------------------------------
    def _route(self, method: str, path: str, headers: dict[str, str],
               body: Any) -> tuple[int, Any]:
        if headers.get("Authorization") != self.authorization:
            return 401, {"errorMessages": ["You are not authenticated."]}
        for i, (prefix, status, apply) in enumerate(self.failures):
            if f"{method} {path}".startswith(prefix):
                del self.failures[i]
                if apply:
                    self._serve(method, path, body)
                return status, {"errorMessages": ["scripted failure"]}
        return self._serve(method, path, body)

    def _serve(self, method: str, full: str, body: Any) -> tuple[int, Any]:
        path = urlsplit(full).path
        version = "3" if self.cloud else "2"
        if self.cloud and path in ("/rest/api/2/search", "/rest/api/3/search"):
            return 410, {"errorMessages": ["The requested API has been removed. Please "
                                           "migrate to the /rest/api/3/search/jql API."]}
        m = re.fullmatch(r"/rest/api/(\d)/(.*)", path)
        if m is None or m.group(1) != version:
            return 404, {"errorMessages": [f"no such endpoint {path}"]}
        rest = m.group(2)
        try:
            if method == "POST" and rest == ("search/jql" if self.cloud else "search"):
                return 200, self._search(body)
            if method == "POST" and rest == "issue":
                return self._create(body)
            if (m := re.fullmatch(r"issue/([A-Z]+-\d+)(/transitions)?", rest)) is None:
                return 404, {"errorMessages": [f"no such endpoint {path}"]}
            issue = self.issues.get(m.group(1))
            if issue is None:
                return 404, {"errorMessages": ["Issue does not exist"]}
            if m.group(2) and method == "GET":
                category = STATUSES[issue.status]
                return 200, {"transitions": [{"id": i, "name": n, "to": {"name": to}}
                                             for i, n, to, _ in TRANSITIONS[category]]}
            if m.group(2) and method == "POST":
                return self._transition(issue, body)
            if method == "GET":
                return 200, issue.view()
            if method == "PUT":
                issue.fields.update(self._fields(body, create=False))
                return 204, None
        except ValueError as exc:
            self.errors.append(str(exc))
            return 400, {"errorMessages": [str(exc)]}
        return 405, None

    def _search(self, body: Any) -> dict[str, Any]:
        if set(body) - {"jql", "maxResults", "fields", "nextPageToken"}:
            raise ValueError(f"unknown search keys {sorted(body)}")
        jql = _Jql(body["jql"], self.now())
        found = [i for i in self.issues.values()
                 if i.indexed and jql.match(i, str(i.fields["project"]["key"]))]
        found.sort(key=lambda i: (STATUSES[i.status] == "done", -(i.resolutiondate or 0)))
        issues = [i.view() for i in found[: int(body.get("maxResults", 50))]]
        if self.cloud:
            return {"issues": issues, "isLast": True}
        return {"startAt": 0, "maxResults": body.get("maxResults", 50), "total": len(found),
                "issues": issues}

    def _fields(self, body: Any, *, create: bool) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) != {"fields"}:
            raise ValueError("the body must be {\"fields\": {...}}")
        f = body["fields"]
        allowed = {"summary", "description", "labels", "priority"}
        if create:
            allowed |= {"project", "issuetype"}
            for key in ("project", "issuetype", "summary"):
                if key not in f:
                    raise ValueError(f"fields.{key} is required")
            if f["project"] != {"key": self.project}:
                raise ValueError(f"project {f['project']!r} does not exist")
            if set(f["issuetype"]) != {"name"}:
                raise ValueError("issuetype must be {name}")
        if extra := set(f) - allowed - set(self.screen_fields):
            raise ValueError(f"fields {sorted(extra)} cannot be set")
        for key, valid in self.screen_fields.items():
            if key in f and not valid(f[key]):
                raise ValueError(f"fields.{key}: {f[key]!r} is not a valid value")
        if "summary" in f:
            s = f["summary"]
            if not isinstance(s, str) or not s or len(s) > 255 or "\n" in s:
                raise ValueError("summary: one line of 1..255 characters")
        if "description" in f:
            if self.cloud:
                check_adf(f["description"])
            elif not isinstance(f["description"], str):
                raise ValueError("description: REST v2 takes wiki markup (a string)")
        for label in f.get("labels", []):
            if not isinstance(label, str) or not label or re.search(r"\s", label):
                raise ValueError(f"label {label!r}: no spaces allowed")
        if "priority" in f and set(f["priority"]) != {"name"}:
            raise ValueError("priority must be {name}")
        return dict(f)

    def _create(self, body: Any) -> tuple[int, Any]:
        fields = self._fields(body, create=True)
        key = f"{self.project}-{len(self.issues) + 1}"
        self.issues[key] = Issue(key, fields, created=self.now(), indexed=not self.index_lag)
        return 201, {"id": key.split("-")[1], "key": key, "self": f"{self.url}/issue/{key}"}

    def _transition(self, issue: Issue, body: Any) -> tuple[int, Any]:
        want = (body or {}).get("transition", {}).get("id")
        for tid, _, to, resolution in TRANSITIONS[STATUSES[issue.status]]:
            if tid == want:
                issue.status, issue.resolution = to, resolution
                issue.resolutiondate = self.now() if resolution else None
                return 204, None
        raise ValueError(f"transition {want!r} is not valid for {issue.key} in {issue.status}")
