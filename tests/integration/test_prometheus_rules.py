"""deploy/prometheus/rules.yml through Debian's promtool: valid, and its unit tests
(deploy/prometheus/tests/*.yml: input series, expected alerts and recorded values)."""

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=RULES, capture_output=True, text=True,
                          timeout=120)


def test_rules_are_valid(prometheus_binaries) -> None:
    done = _promtool(prometheus_binaries[1], "check", "rules", "rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 13 rules found" in done.stdout


@pytest.mark.parametrize("test_file", sorted(p.name for p in (RULES / "tests").glob("*.yml")))
def test_promtool_rule_unit_tests_pass(prometheus_binaries, test_file: str) -> None:
    done = _promtool(prometheus_binaries[1], "test", "rules", f"tests/{test_file}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
