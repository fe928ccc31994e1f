"""A group's consumer: a Kafka consumer-group member subscribed by pattern to the group's
event topics, its command topic and its retry topics.

Records are handed out as deliveries, at most ``concurrency`` unsettled at a time, each
callback in its own task; offsets are committed only once a delivery settled, contiguously
per partition (`_ledger`). A retry topic's record that is not due yet pauses its partition
until it is (the partition is read again from that record then). An ordered group's retry
waits in place: the partition hands out nothing more until it is due, and its attempt count
is written to the group's attempts topic, so a worker that starts after a restart goes on
from there. A rebalance first drains the handlers of the revoked partitions (up to
``drain_timeout``) and commits what they settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition  # type: ignore[import-untyped]

from ..._clock import Clock
from ..._exceptions import BrokerUnavailable
from .._group import GroupSpec
from .._message import Delivery
from .._transport import Consumer, Deliver
from ._attempts import AttemptStore
from ._lanes import Lanes, Raw, Waiting
from ._ledger import Committer, Ledger
from ._names import Names
from ._options import KafkaOptions
from ._wire import due_at, to_delivery

__all__ = ["GroupConsumer", "Handle"]

logger = logging.getLogger(__name__)

SendAgain = Callable[[Delivery, int], Awaitable[None]]
"""Sends a delivery again to its group's retry topics as the given attempt, due now."""


@dataclass(eq=False, slots=True)
class Handle:
    """What a `Delivery` of this transport carries: where its record came from."""

    consumer: GroupConsumer
    tp: TopicPartition
    record: Raw
    retry_topic: bool
    settled: bool = False
    retried: bool = False
    """An ordered group's record handed out again after waiting in place (its written-down
    attempt count is removed once it settles for good)."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: GroupConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._owner.assigned(set(assigned))


class GroupConsumer(Consumer):
    """The running consumer of one group in this process (see the module docstring)."""

    def __init__(
        self,
        spec: GroupSpec,
        deliver: Deliver,
        *,
        names: Names,
        settings: KafkaOptions,
        clock: Clock,
        bootstrap: str,
        url: str,
        send_again: SendAgain,
        attempts: AttemptStore | None,
    ) -> None:
        self.spec = spec
        self._deliver = deliver
        self._names = names
        self._settings = settings
        self._clock = clock
        self._url = url
        self._send_again = send_again
        self._attempts = attempts
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=names.consumer_group(spec.name),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.session_timeout * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
            rebalance_timeout_ms=int(settings.drain_timeout * 1000),
            metadata_max_age_ms=int(settings.metadata_max_age * 1000),
            # Handlers run beside the fetch loop, which waits while the window is full;
            # the loop, not the handlers, must call in within this time.
            max_poll_interval_ms=3_600_000,
            request_timeout_ms=int(settings.connect_timeout * 1000) + 5000,
        )
        self._ledgers: dict[TopicPartition, Ledger] = {}
        self._committer = Committer(self._consumer, self._ledgers)
        self._lanes = Lanes(spec.ordered)
        self._tasks: dict[asyncio.Task[None], Handle] = {}
        self._timers: dict[TopicPartition, asyncio.TimerHandle] = {}
        self._restored: dict[TopicPartition, dict[int, tuple[int, float | None, float]]] = {}
        self._revoking: set[TopicPartition] = set()
        self._room = asyncio.Event()
        self._assigned = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._stopped = False

    # -- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group and wait for the first assignment (so a worker that returns from
        `start` takes its share of what is published next)."""
        pattern = self._names.subscription(self.spec.name, self.spec.patterns)
        try:
            await self._consumer.start()
        except Exception as exc:
            await self._consumer.stop()
            raise BrokerUnavailable(f"cannot reach Kafka at {self._url}: {exc}") from exc
        self._consumer.subscribe(pattern=pattern, listener=_Rebalance(self))
        self._runner = asyncio.create_task(self._run(), name=f"tidings-kafka-{self.spec.name}")
        wait = self._settings.session_timeout + self._settings.drain_timeout
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._assigned.wait(), wait)

    @property
    def in_flight(self) -> int:
        return sum(1 for handle in self._tasks.values() if not handle.settled)

    def counts(self) -> tuple[int, int, int]:
        """(in flight from event and command topics, in flight from retry topics, ordered
        retries waiting in place) — what `stats` takes off the lag."""
        main = retry = 0
        for handle in self._tasks.values():
            if not handle.settled:
                if handle.retry_topic:
                    retry += 1
                else:
                    main += 1
        return main, retry, self._lanes.waiting

    async def _run(self) -> None:
        while not self._stopped:
            room = self.spec.concurrency - self.in_flight - self._lanes.queued
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                batch = await self._consumer.getmany(timeout_ms=200, max_records=room)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker that went away: the client reconnects
                logger.warning("group %s: fetching failed: %s", self.spec.name, exc)
                await asyncio.sleep(0.5)
                continue
            for tp, records in batch.items():
                self._take(tp, records)
            self._pump()

    def _take(self, tp: TopicPartition, records: list[Raw]) -> None:
        if tp in self._revoking or tp not in self._consumer.assignment():
            return
        retry_topic = self._names.is_retry(tp.topic, self.spec.name)
        now = self._clock.time()
        for record in records:
            if retry_topic:
                due = due_at(record.headers)
                if due is not None and due > now + 0.005:
                    self._defer(tp, record.offset, due - now)
                    return
            ledger = self._ledgers.setdefault(tp, Ledger(record.offset))
            ledger.fetched(record.offset)
            restored = self._restored.get(tp, {}).pop(record.offset, None)
            if restored is not None:
                attempt, first, due = restored
                self._lanes.started(record)
                self._lanes.hold(tp, Waiting(record, attempt + 1, first, due))
                self._wake_next(tp)
                continue
            self._lanes.add(tp, record)

    def _defer(self, tp: TopicPartition, offset: int, delay: float) -> None:
        """Read `tp` again from `offset` in `delay` seconds (a retry not due yet)."""
        self._consumer.pause(tp)
        self._consumer.seek(tp, offset)

        def resume() -> None:
            self._timers.pop(tp, None)
            if tp in self._consumer.assignment():
                self._consumer.resume(tp)

        self._cancel_timer(tp)
        self._timers[tp] = asyncio.get_running_loop().call_later(delay, resume)

    def _wake_next(self, tp: TopicPartition) -> None:
        """Set the partition's timer for the first retry waiting in it."""
        self._cancel_timer(tp)
        due = self._lanes.next_due(tp)
        if due is not None:
            delay = max(0.0, due - self._clock.time())
            self._timers[tp] = asyncio.get_running_loop().call_later(delay, self._release, tp)

    def _cancel_timer(self, tp: TopicPartition) -> None:
        timer = self._timers.pop(tp, None)
        if timer is not None:
            timer.cancel()

    def _pump(self) -> None:
        room = self.spec.concurrency - self.in_flight
        for tp, record in self._lanes.take(room):
            self._launch(tp, record)

    def _launch(
        self,
        tp: TopicPartition,
        record: Raw,
        attempt: int | None = None,
        first: float | None = None,
    ) -> None:
        handle = Handle(self, tp, record, self._names.is_retry(tp.topic, self.spec.name))
        handle.retried = attempt is not None
        delivery = to_delivery(
            self.spec.name, self._names, tp.topic, record.key, record.value, record.headers, handle
        )
        if attempt is not None:
            delivery.attempt, delivery.first_failed_at = attempt, first
        task = asyncio.create_task(self._call(delivery, handle))
        self._tasks[task] = handle
        task.add_done_callback(self._tasks_done)

    def _tasks_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._room.set()

    async def _call(self, delivery: Delivery, handle: Handle) -> None:
        try:
            await self._deliver(delivery)
        except asyncio.CancelledError:
            if not handle.settled and not self._stopped:
                raise
        except Exception:
            logger.exception("group %s: a delivery callback failed", self.spec.name)
        if not handle.settled:
            # Stopped mid-handler (or a callback that did not settle): it comes again,
            # with this attempt counted.
            with contextlib.suppress(Exception):
                await self.give_back(handle, delivery)

    # -- settling ----------------------------------------------------------------------------

    async def settle(self, handle: Handle) -> None:
        """The delivery is done for good (acked, retried elsewhere, dead-lettered)."""
        if handle.settled:
            return
        handle.settled = True
        self._lanes.finished(handle.record)
        ledger = self._ledgers.get(handle.tp)
        if ledger is not None:
            ledger.settle(handle.record.offset)
        self._room.set()
        self._pump()
        if handle.retried and self._attempts is not None:
            try:
                await self._attempts.forget(handle.tp, handle.record.offset)
            except Exception as exc:  # a stale count is ignored once the offset moved on
                logger.debug("group %s: attempt count not removed: %s", self.spec.name, exc)
        await self._committer.flush()

    async def wait_in_place(self, handle: Handle, delivery: Delivery, delay: float) -> None:
        """An ordered group's retry: hold the partition, keep the record uncommitted, and
        hand it out again when due, as the next attempt (written down first, so it survives
        a restart)."""
        if handle.settled:
            return
        now = self._clock.time()
        first = delivery.first_failed_at if delivery.first_failed_at is not None else now
        if self._attempts is not None:
            await self._attempts.remember(
                handle.tp, handle.record.offset, delivery.attempt, first, now + delay
            )
        handle.settled = True
        self._room.set()
        if self._stopped or handle.tp in self._revoking or handle.tp not in self._ledgers:
            # Given up meanwhile: the record comes again, with the count written down.
            self._lanes.finished(handle.record)
            return
        waiting = Waiting(handle.record, delivery.attempt + 1, first, now + delay)
        self._lanes.hold(handle.tp, waiting)
        self._wake_next(handle.tp)

    def _release(self, tp: TopicPartition) -> None:
        self._timers.pop(tp, None)
        if self._stopped or tp in self._revoking:
            return
        for waiting in self._lanes.release(tp, self._clock.time() + 0.001):
            self._launch(tp, waiting.record, waiting.attempt, waiting.first_failed_at)
        self._wake_next(tp)

    async def give_back(self, handle: Handle, delivery: Delivery) -> None:
        """A delivery that was not settled (its worker stopped): it comes again with this
        attempt counted."""
        if self.spec.ordered:
            await self.wait_in_place(handle, delivery, 0.0)
            return
        await self._send_again(delivery, delivery.attempt + 1)
        await self.settle(handle)

    # -- rebalancing -------------------------------------------------------------------------

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Before giving partitions up: hand out nothing more from them (what is fetched and
        not handed out comes again to the new owner), let their handlers finish (up to
        `drain_timeout`), commit what settled, and forget them."""
        self._revoking |= partitions
        for tp in partitions:
            self._cancel_timer(tp)
        self._lanes.drop(partitions)
        running = [t for t, h in self._tasks.items() if h.tp in partitions and not h.settled]
        if running:
            await asyncio.wait(running, timeout=self._settings.drain_timeout)
        await self._committer.flush(partitions)
        self._committer.forget(partitions)
        for tp in partitions:
            self._ledgers.pop(tp, None)
            self._restored.pop(tp, None)
        self._revoking -= partitions

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """New partitions: an ordered group looks up the retries that wait in them."""
        if self._attempts is not None and partitions:
            try:
                self._restored.update(await self._attempts.waiting(partitions))
            except Exception as exc:
                logger.warning("group %s: attempt counts not read: %s", self.spec.name, exc)
        self._assigned.set()

    # -- stopping ----------------------------------------------------------------------------

    async def stop(self, timeout: float) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        for tp in list(self._timers):
            self._cancel_timer(tp)
        running = list(self._tasks)
        if running:
            _, late = await asyncio.wait(running, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
        await self._committer.flush()
        try:
            await self._consumer.stop()
        except Exception as exc:
            logger.debug("group %s: leaving the consumer group failed: %s", self.spec.name, exc)
