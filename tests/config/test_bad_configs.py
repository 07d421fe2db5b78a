"""One file per validation rule in ``bad/``, each naming the problem it must produce.

The first comment lines of each file hold the expectations::

    # expect: defaults.window_events: must be an integer >= 50 (got 10)
    # expect-warning: http.listen: binds to 0.0.0.0, reachable from other hosts

Every ``expect`` must appear among the errors (and there must be no other
error, so a rule does not drag noise behind it); every ``expect-warning``
among the warnings.  No secret from the environment or the file may appear in
any message.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.load import ConfigError, check_config, load_config

BAD = Path(__file__).parent / "bad"
BAD_FILES = sorted(BAD.glob("*.toml"))

# The environment the bad configs are checked in (never os.environ).
ENV = {
    "EMPTY_VAR": "",
    "NOT_A_URL": "hunter2-not-a-url",
    "GOOD_URL": "https://hooks.example.com/T000/SECRET-TOKEN-123",
    "PD_KEY": "pd-routing-key-SECRET-456",
}
SECRETS = [v for v in ENV.values() if v] + ["hunter2", "inline-secret-token"]


def expectations(path: Path) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    warnings: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        tag, _, text = line.lstrip("# ").partition(": ")
        if tag == "expect":
            errors.append(text)
        elif tag == "expect-warning":
            warnings.append(text)
    return errors, warnings


def test_there_is_a_bad_config_per_rule() -> None:
    assert len(BAD_FILES) >= 25


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
def test_bad_config(path: Path) -> None:
    want_errors, want_warnings = expectations(path)
    assert want_errors or want_warnings, f"{path.name} has no '# expect:' line"

    errors, warnings = check_config(path, env=ENV)

    for text in want_errors:
        assert any(text in e for e in errors), f"{text!r} not among {errors}"
    assert len(errors) == len(want_errors), f"unexpected errors: {errors}"
    for text in want_warnings:
        assert any(text in w for w in warnings), f"{text!r} not among {warnings}"
    messages = "\n".join(errors + warnings)
    for secret in SECRETS:
        assert secret not in messages

    if want_errors:
        with pytest.raises(ConfigError) as info:
            load_config(path, env=ENV)
        assert info.value.problems == errors
        for problem in errors:
            assert problem in str(info.value)
    else:
        load_config(path, env=ENV)  # warnings only: it loads
