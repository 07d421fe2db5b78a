from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerts.support import Clock, FakeReceiver, FakeSMTP


@pytest.fixture
def server() -> Iterator[FakeReceiver]:
    fake = FakeReceiver()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def smtp() -> Iterator[FakeSMTP]:
    fake = FakeSMTP()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()
