"""The Dockerfile, built and run for real (podman, offline; tests/deploy/container.py):
the default command serves /healthz and /readyz and consumes from the real broker,
as uid 10001 on a read-only root filesystem, its state on the volume; SIGTERM stops
it cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker, free_port
from tests.deploy.container import (
    RUNTIME,
    ULIMITS,
    ContainerError,
    build_context,
    build_image,
    cache_lock,
    ensure_tools,
    ensure_wheels,
    podman,
)
from tests.integration.test_examples import _load

pytestmark = pytest.mark.integration
UID = 10001
EVENTS = 400


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    try:
        with cache_lock():  # the other worker may be building the same image
            ensure_tools()
            context = build_context(tmp_path_factory.mktemp("context"), ensure_wheels())
            return build_image(context)
    except ContainerError as exc:
        pytest.fail(f"cannot build the image: {exc}", pytrace=False)


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        b.create_topics(["predictions", "labels"], partitions=2)
        yield b


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError:
        return 0, ""


def _wait(what: str, check, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.5)


def test_the_image_runs_read_only_as_non_root_and_consumes(
    image: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    port = free_port()
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, UID, UID)
    config = tmp_path / "config.toml"
    config.write_text(f"""
[kafka]
bootstrap_servers = ["{broker.bootstrap}"]
group_id = "driftwatch-container-test"
session_timeout_ms = 6000
[store]
url = "sqlite:////var/lib/driftwatch/driftwatch.db"
checkpoint_interval = "1s"
[http]
listen = "127.0.0.1:{port}"
[[receivers]]
name = "default"
[[receivers.file]]
path = "/var/lib/driftwatch/out/alerts.jsonl"
[route]
receiver = "default"
""")
    config.chmod(0o644)
    name = f"driftwatch-test-{os.getpid()}"
    base = f"http://127.0.0.1:{port}"
    podman("run", "--detach", "--name", name, *RUNTIME, *ULIMITS, "--network", "host",
           "--read-only", "--tmpfs", "/tmp", "--volume", f"{state}:/var/lib/driftwatch",
           "--volume", f"{config}:/etc/driftwatch/config.toml:ro",
           "--env", f"DRIFTWATCH_HEALTHZ_URL={base}/healthz", image)
    try:
        _wait("/healthz", lambda: _get(f"{base}/healthz")[0] == 200)
        emitter = _load("model_server_kafka_python").DriftwatchEmitter(broker.bootstrap)
        _load("model_server_kafka_python").serve(emitter, EVENTS)
        emitter.close()
        _wait("/readyz", lambda: _get(f"{base}/readyz")[0] == 200)
        _wait("the events counted in /metrics", lambda: _consumed(base) >= EVENTS)

        assert podman("exec", name, "id", "-u").stdout.strip() == str(UID)
        denied = podman("exec", name, "touch", "/opt/driftwatch/x", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        health = podman("inspect", "--format", "{{json .Config.Healthcheck}}", name).stdout
        assert "/healthz" in health or "DRIFTWATCH_HEALTHZ_URL" in health
        assert podman("healthcheck", "run", name, check=False).returncode == 0

        podman("stop", "--time", "30", name)  # SIGTERM: a clean stop
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", podman("logs", name).stderr[-3000:]
        assert (state / "driftwatch.db").stat().st_size > 0  # the state is on the volume
    finally:
        logs = podman("logs", name, check=False)
        podman("rm", "--force", name, check=False)
        if logs.returncode == 0:
            print(logs.stderr[-5000:])


def _consumed(base: str) -> float:
    status, text = _get(f"{base}/metrics")
    if status != 200:
        return 0.0
    found = re.findall(r'^driftwatch_events_total\{[^}]*type="prediction"[^}]*\} (\S+)$', text,
                       re.M)
    return sum(float(v) for v in found)


def test_the_default_command_is_run_with_the_image_config(image: str) -> None:
    out = podman("image", "inspect", "--format",
                 "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.User}}",
                 image).stdout.strip()
    assert out == ('["driftwatch"] ["run","--config","/etc/driftwatch/config.toml"] '
                   "10001:10001")
    check = podman("run", "--rm", *RUNTIME, *ULIMITS, "--read-only", "--network", "none",
                   image, "check-config", "/etc/driftwatch/config.toml", check=False)
    assert check.returncode == 0, check.stderr
    assert "OK" in check.stdout + check.stderr


def test_podman_is_where_the_tests_expect(image: str) -> None:
    """The flags the other tests pass are needed: without the ulimits runc refuses."""
    bare = subprocess.run(["podman", "run", "--rm", *RUNTIME, image, "--help"],
                          capture_output=True, text=True, timeout=120)
    with_limits = podman("run", "--rm", *RUNTIME, *ULIMITS, image, "--help", check=False)
    assert with_limits.returncode == 0, with_limits.stderr
    if bare.returncode != 0:
        assert "rlimit" in bare.stderr
