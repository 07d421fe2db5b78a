from __future__ import annotations

import pytest

from tests.integration.alertmanager import InstallError, ensure_installed


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    """Debian's Alertmanager binary, installed (``apt-get install -y
    prometheus-alertmanager``) once per session when it is missing."""
    try:
        return ensure_installed()
    except InstallError as exc:
        pytest.fail(f"cannot provide a real Alertmanager: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def prometheus_binaries() -> tuple[str, str]:
    """Debian's ``prometheus`` and ``promtool``, installed (``apt-get install -y
    prometheus``) once per session when missing."""
    from tests.integration.prometheus import ensure_installed as ensure_prometheus

    try:
        return ensure_prometheus()
    except InstallError as exc:
        pytest.fail(f"cannot provide a real Prometheus: {exc}", pytrace=False)
