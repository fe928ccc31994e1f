"""Private servers for integration tests: a RabbitMQ node and a Redis server on free ports.

Each runs from the Debian binaries with its own data and log directories and private ports
(AMQP, Erlang distribution, EPMD, management), so a system RabbitMQ on 5672 is never touched.
They are started once per test session (see ``tests/conftest.py`` style fixtures in the
modules that use them) and stopped after it.

A missing binary fails the tests with a clear message (under CI and outside it alike, as
Dramatiq's ``check_rabbitmq`` does under CI): install them with ``scripts/install-servers.sh``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
REDIS_SERVER = "redis-server"
START_TIMEOUT = 90.0
ALL_PLUGINS = ("rabbitmq_management", "rabbitmq_consistent_hash_exchange")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _require(binary: str, package: str) -> str:
    found = binary if os.path.isabs(binary) and os.access(binary, os.X_OK) else None
    found = found or shutil.which(binary)
    if found is None:
        pytest.fail(
            f"{binary} is not installed: the {package} tests start a private server; "
            "run `bash scripts/install-servers.sh` (apt-get install rabbitmq-server redis-server)",
            pytrace=False,
        )
    return found


def _pids_listening(port: int) -> list[int]:
    """Process ids listening on a TCP port (to stop the EPMD daemon our node started)."""
    try:
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return []
    pids: list[int] = []
    for chunk in out.split("pid=")[1:]:
        digits = chunk.split(",", 1)[0]
        if digits.isdigit():
            pids.append(int(digits))
    return pids


@dataclass
class RabbitNode:
    """A private RabbitMQ node; `restart` keeps its data directory and ports.

    `plugins` are the plugins it runs: the management API and the consistent-hash exchange by
    default; a node started with none is a stock install before ``rabbitmq-plugins enable``.
    """

    base: Path
    plugins: tuple[str, ...] = ALL_PLUGINS
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def nodename(self) -> str:
        return f"tidings-test-{self.amqp_port}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def _environment(self) -> dict[str, str]:
        for name in ("mnesia", "log", "home"):
            (self.base / name).mkdir(parents=True, exist_ok=True)
        plugins = self.base / "enabled_plugins"
        plugins.write_text(f"[{','.join(self.plugins)}].\n")
        config = self.base / "rabbitmq.conf"
        config.write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
                    f"management.tcp.port = {self.management_port}",
                    "management.tcp.ip = 127.0.0.1",
                    "collect_statistics_interval = 500",
                    "max_message_size = 1048576",
                    "",
                ]
            )
        )
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
            RABBITMQ_PID_FILE=str(self.base / "rabbit.pid"),
            HOME=str(self.base / "home"),
        )
        (self.base / "rabbitmq-env.conf").touch()
        return env

    def start(self) -> None:
        binary = _require(RABBITMQ_SERVER, "rabbitmq")
        log = open(self.base / "server.out", "ab")  # noqa: SIM115 - kept for the node's life
        self.process = subprocess.Popen(
            [binary],
            cwd=self.base,  # crash dumps (erl_crash.dump, MnesiaCore.*) land in its own dir
            env=self._environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited early: {self._tail()}")
            if _listening(self.amqp_port) and self._management_ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"rabbitmq-server did not start in {START_TIMEOUT:g}s: {self._tail()}")

    def _management_ready(self) -> bool:
        if "rabbitmq_management" not in self.plugins:
            return True
        try:
            with urllib.request.urlopen(f"{self.management_url}/api/overview", timeout=1):
                return True
        except OSError as exc:
            return "401" in str(exc)

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.base / "server.out").read_text()[-2000:]
        return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while _listening(self.amqp_port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        """Stop the node and start it again on the same data directory and ports."""
        self.stop()
        self.start()

    def shutdown(self) -> None:
        """Stop the node and the EPMD daemon it started on its private port."""
        self.stop()
        for pid in _pids_listening(self.epmd_port):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


@dataclass
class RedisServer:
    """A private redis-server, no persistence, on a free port."""

    base: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = _require(REDIS_SERVER, "redis")
        self.base.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.base),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


# One node per session, even when several test modules import these fixtures (each import
# makes its own session fixture): the first user starts it, the last one stops it.
_shared: dict[str, list[object]] = {}


def _acquire(kind: str, make):
    entry = _shared.get(kind)
    if entry is None:
        base = Path(tempfile.mkdtemp(prefix=f"tidings-{kind}-"))
        server = make(base)
        try:
            server.start()
        except BaseException:
            (server.shutdown if hasattr(server, "shutdown") else server.stop)()
            shutil.rmtree(base, ignore_errors=True)
            raise
        entry = _shared[kind] = [server, base, 0]
    entry[2] = int(entry[2]) + 1  # type: ignore[call-overload]
    return entry[0]


def _release(kind: str) -> None:
    entry = _shared[kind]
    entry[2] = int(entry[2]) - 1  # type: ignore[call-overload]
    if entry[2] == 0:
        del _shared[kind]
        server, base = entry[0], entry[1]
        (server.shutdown if hasattr(server, "shutdown") else server.stop)()
        shutil.rmtree(str(base), ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq_node():
    """The session's private RabbitMQ node."""
    node = _acquire("rabbitmq", RabbitNode)
    try:
        yield node
    finally:
        _release("rabbitmq")


@pytest.fixture(scope="session")
def bare_rabbitmq_node():
    """A second private RabbitMQ node with no plugins (no management API, no
    consistent-hash exchange), as a stock install runs; started on first use."""
    node = _acquire("rabbitmq-bare", lambda base: RabbitNode(base, plugins=()))
    try:
        yield node
    finally:
        _release("rabbitmq-bare")


@pytest.fixture(scope="session")
def redis_server():
    """The session's private Redis server."""
    server = _acquire("redis", RedisServer)
    try:
        yield server
    finally:
        _release("redis")


async def delete_namespace(node: RabbitNode, prefix: str) -> None:
    """Delete every exchange and queue of a bus namespace (``<prefix>`` and ``<prefix>.*``)."""
    import aio_pika

    def names(kind: str) -> list[str]:
        import base64
        import json

        request = urllib.request.Request(f"{node.management_url}/api/{kind}/%2F?columns=name")
        request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(request, timeout=5) as response:
            rows = json.loads(response.read())
        return [
            r["name"] for r in rows if r["name"] == prefix or r["name"].startswith(prefix + ".")
        ]

    import asyncio

    queues = await asyncio.to_thread(names, "queues")
    exchanges = await asyncio.to_thread(names, "exchanges")
    connection = await aio_pika.connect(node.url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()
