"""A private three-node RabbitMQ cluster on one host, for the cluster and fault tests.

Each node runs from the Debian binaries with its own node name (``rabbit-a@localhost`` ...),
data directory and AMQP, distribution and management ports; the three share one private EPMD
port (so they find each other and no system EPMD is touched) and one Erlang cookie (a HOME of
their own). The three start at the same time, then ``b`` and ``c`` join ``a`` one after the
other with ``rabbitmqctl join_cluster``. The cluster is started once per session, on first
use, and a missing binary fails the tests (`tests.servers`).

The fault tests act on a node's process group: `kill` (SIGKILL), `stop`/`start` (a clean stop
and a restart on the same data), `freeze`/`thaw` (SIGSTOP/SIGCONT: a node that holds its TCP
connections but answers nothing, as a node in a long GC pause or a partitioned one looks).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import RabbitNode, _pids_listening, free_port

CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
COOKIE = "TIDINGSCLUSTERTESTCOOKIE"
LETTERS = ("a", "b", "c")


@dataclass
class ClusterNode(RabbitNode):
    """One node of the cluster: a `RabbitNode` with a letter in its name, the cluster's
    EPMD port and HOME (the cookie), and `rabbitmqctl` at hand."""

    letter: str = "a"
    home: Path = field(default_factory=Path)

    @property
    def nodename(self) -> str:
        return f"rabbit-{self.letter}@localhost"

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        env["HOME"] = str(self.home)
        # A frozen node is noticed by its peers within seconds rather than a minute.
        with (self.base / "rabbitmq.conf").open("a") as config:
            config.write("net_ticktime = 10\n")
        # A retry dead-lettered (at least once) from a delay tier while its group's queue
        # had no leader is sent again after this many ms (the default is minutes).
        (self.base / "advanced.config").write_text(
            "[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 2000}]}].\n"
        )
        return env

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n <this node> ARGS``; fail with its output when it fails."""
        env = self._environment()
        low = free_port()
        env.update(RABBITMQ_CTL_DIST_PORT_MIN=str(low), RABBITMQ_CTL_DIST_PORT_MAX=str(low))
        done = subprocess.run(
            [CTL, "-n", self.nodename, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {self.nodename} failed: "
                f"{done.stdout[-1500:]}{done.stderr[-1500:]}"
            )
        return done.stdout

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.nodename} is not running"
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the node's process group (the Erlang VM and its helpers): a crash."""
        process, self.process = self.process, None
        assert process is not None, f"{self.nodename} is not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def freeze(self) -> None:
        """SIGSTOP the node: its sockets stay open, nothing answers."""
        os.killpg(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen node."""
        os.killpg(self.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _start_together(nodes: list[ClusterNode]) -> None:
    """Start `nodes` at the same time (each in a thread); raise the first failure."""
    errors: list[BaseException] = []

    def start(node: ClusterNode) -> None:
        try:
            node.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@dataclass
class RabbitCluster:
    """Three `ClusterNode`s joined in one cluster; see the module docstring."""

    base: Path
    nodes: list[ClusterNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        home = self.base / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(COOKIE)
        cookie.chmod(0o400)
        epmd = free_port()
        for letter in LETTERS:
            (self.base / letter).mkdir(exist_ok=True)
        self.nodes = [
            ClusterNode(self.base / letter, letter=letter, home=home, epmd_port=epmd)
            for letter in LETTERS
        ]

    def node(self, letter: str) -> ClusterNode:
        return self.nodes[LETTERS.index(letter)]

    def url(self, *letters: str) -> str:
        """A multi-host URL of the given nodes (all three by default), in that order."""
        chosen = [self.node(x) for x in letters] if letters else self.nodes
        hosts = ",".join(f"127.0.0.1:{n.amqp_port}" for n in chosen)
        return f"amqp://guest:guest@{hosts}/"

    def start(self) -> None:
        """Start the three nodes at once, then join b and c to a one after the other
        (concurrent joins can fail in mnesia)."""
        _start_together(self.nodes)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.nodename)
            node.ctl("start_app")
            node.ctl("await_startup")
        status = first.ctl("cluster_status", "--formatter", "json")
        for node in self.nodes:
            assert node.nodename in status, f"{node.nodename} did not join: {status}"

    def heal(self) -> None:
        """Bring every node back: thaw the frozen, start the stopped one after the other
        (two starting at once can trip RabbitMQ 3.10's management agent over their two
        distribution connections; a start that fails so is tried once more), wait until
        each runs."""
        for node in self.nodes:
            if node.running:
                with contextlib.suppress(ProcessLookupError):
                    node.thaw()
        for node in self.nodes:
            if not node.running:
                try:
                    node.start()
                except RuntimeError:
                    node.stop()
                    node.start()
        for node in self.nodes:
            node.ctl("await_startup", timeout=120.0)

    def shutdown(self) -> None:
        """Kill every node (their data is thrown away) and the cluster's EPMD daemon."""
        for node in self.nodes:
            if node.running:
                with contextlib.suppress(ProcessLookupError):
                    node.kill()
        for pid in _pids_listening(self.nodes[0].epmd_port):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="session")
def rabbitmq_cluster() -> Iterator[RabbitCluster]:
    """The session's three-node cluster, started on first use and stopped after the session."""
    base = Path(tempfile.mkdtemp(prefix="tidings-cluster-"))
    cluster = RabbitCluster(base)
    started = time.monotonic()
    try:
        cluster.start()
    except BaseException:
        cluster.shutdown()
        shutil.rmtree(base, ignore_errors=True)
        raise
    cluster.started_in = time.monotonic() - started  # type: ignore[attr-defined]
    try:
        yield cluster
    finally:
        cluster.shutdown()
        shutil.rmtree(base, ignore_errors=True)
