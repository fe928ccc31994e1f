"""Where the benchmarks run: the sizes of a run, a scratch directory on the disk being
measured (embedded broker files), and a RabbitMQ node started on first use."""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from ._rabbitmq_clients import broker_url


@dataclass(frozen=True)
class Sizes:
    """How much each scenario does per round."""

    events: int  # embedded throughput: events per contender
    raw_single: int  # raw SQLite with one row per commit (fsync-bound, so fewer)
    rate: float  # embedded latency: events/s
    rate_seconds: float
    amqp_messages: int  # RabbitMQ throughput: messages per contender
    amqp_rates: tuple[float, ...]  # RabbitMQ latency: messages/s of each run
    amqp_rate_seconds: float
    scale_events: int  # embedded scaling: events per run (a tenth for 64 KiB payloads)
    scale_amqp_events: int  # RabbitMQ scaling: the same
    memory_events: int  # worker memory: events handled under load
    idle_seconds: float  # worker memory: how long the worker idles before it is read
    workers: tuple[int, ...] = (1, 2, 4)
    payloads: tuple[int, ...] = (100, 1024, 64 * 1024)

    def scale_count(self, base: int, payload: int) -> int:
        """Events of a scaling run: `base`, or a tenth of it for payloads over 1 KiB."""
        return base if payload <= 1024 else max(base // 10, 20)


FULL = Sizes(
    events=20_000,
    raw_single=5_000,
    rate=1000.0,
    rate_seconds=5.0,
    amqp_messages=20_000,
    amqp_rates=(500.0, 1000.0),
    amqp_rate_seconds=4.0,
    scale_events=20_000,
    scale_amqp_events=5_000,
    memory_events=20_000,
    idle_seconds=3.0,
)
QUICK = Sizes(
    events=200,
    raw_single=50,
    rate=200.0,
    rate_seconds=0.3,
    amqp_messages=100,
    amqp_rates=(200.0,),
    amqp_rate_seconds=0.3,
    scale_events=100,
    scale_amqp_events=100,
    memory_events=100,
    idle_seconds=0.2,
    workers=(1, 2),  # starting 4 processes per transport would double the smoke test
)


@dataclass(frozen=True)
class RabbitMQ:
    """A RabbitMQ node the benchmarks may use (management URL when it is our own node)."""

    url: str
    management_url: str | None


class Lab:
    """One run's sizes, rounds, scratch directory and (on first use) RabbitMQ node."""

    def __init__(
        self,
        sizes: Sizes,
        rounds: int,
        scratch: Path,
        *,
        rabbitmq_url: str | None = None,
        use_rabbitmq: bool = True,
    ) -> None:
        self.sizes = sizes
        self.rounds = rounds
        self.scratch = scratch
        self.use_rabbitmq = use_rabbitmq
        self._rabbitmq_url = rabbitmq_url
        self._rabbitmq: RabbitMQ | None = None
        self._stack = contextlib.ExitStack()
        self._files = itertools.count()

    def sqlite_url(self, label: str) -> str:
        """URL of a new embedded broker file in the scratch directory."""
        return f"sqlite:///{self.scratch_file(label)}"

    def scratch_file(self, label: str) -> Path:
        """A new file name in the scratch directory."""
        return self.scratch / f"{label}-{next(self._files)}.db"

    def rabbitmq(self) -> RabbitMQ:
        """The RabbitMQ node: the one given, or a private node started now and stopped by
        `close`."""
        if self._rabbitmq is None:
            url, management = self._stack.enter_context(broker_url(self._rabbitmq_url))
            self._rabbitmq = RabbitMQ(url, management)
        return self._rabbitmq

    @staticmethod
    def settle() -> None:
        """Write out the page cache's dirty data before a measurement, so what the previous
        contender left unwritten does not slow this one's fsyncs (on ext4 an fsync commits
        the journal, with the pending data of other files)."""
        os.sync()

    @property
    def used_rabbitmq(self) -> bool:
        """Whether a scenario asked for the RabbitMQ node."""
        return self._rabbitmq is not None

    def close(self) -> None:
        self._stack.close()
