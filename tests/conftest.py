import pytest

from monitor.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker():
    """A real Kafka-compatible broker (tansu) on a free loopback port."""
    with EmbeddedBroker() as b:
        yield b
