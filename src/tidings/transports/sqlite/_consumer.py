"""A consumer of one group on the embedded broker.

It claims ready deliveries in batches (as many as its free capacity), runs each in its own
task, renews the leases of running ones every third of the lease, and sleeps in between
until a wake-up (a commit in this process, or a datagram from another), the next scheduled
delivery or lease expiry, or the safety poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable
from typing import cast

from ..._clock import Clock
from ..._exceptions import StateError, TidingsError
from .._futures import relay
from .._group import GroupSpec
from .._message import Delivery
from .._transport import Consumer, Deliver
from ._consume_ops import AckOp, ClaimOp, RegisterOp, ReleaseOp, RenewOp, UnregisterOp
from ._store import WriterThread
from ._txn import Lease

__all__ = ["AckQueue", "SqliteConsumer"]

log = logging.getLogger("tidings.sqlite")


class AckQueue:
    """Acknowledgements committed together: the acks of one event-loop turn go to the
    writer as one `AckOp` (one op and one future per batch instead of per delivery).

    `ack` returns a future resolved by that commit, which a caller may also leave alone
    (a lease keeps the delivery from everyone else until then; a failed commit is logged,
    and those deliveries come back when their leases end). `flush` waits until every ack
    queued so far is committed."""

    def __init__(self, writer: WriterThread) -> None:
        self._writer = writer
        self._queued: list[Lease] = []
        self._batch: asyncio.Future[None] | None = None
        self._committing: set[asyncio.Future[object]] = set()

    def ack(self, lease: Lease) -> asyncio.Future[None]:
        """Queue the ack of `lease`; the future resolves once it is committed."""
        self._queued.append(lease)
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = loop.create_future()
            batch.add_done_callback(self._report)
            loop.call_soon(self._submit)
        return batch

    async def flush(self) -> None:
        """Wait for every ack queued so far to be committed (or to fail)."""
        while self._batch is not None or self._committing:
            if self._batch is not None:
                await asyncio.wait([self._batch])
            else:
                await asyncio.wait(list(self._committing))

    def _submit(self) -> None:
        leases, self._queued = self._queued, []
        batch, self._batch = self._batch, None
        assert batch is not None
        try:
            committed = self._writer.submit(AckOp(leases))
        except BaseException as exc:
            batch.set_exception(exc)
            return
        self._committing.add(committed)
        committed.add_done_callback(lambda done: self._relay(done, batch))

    def _relay(self, done: asyncio.Future[object], batch: asyncio.Future[None]) -> None:
        self._committing.discard(done)
        relay(done, batch)

    @staticmethod
    def _report(batch: asyncio.Future[None]) -> None:
        if batch.cancelled():
            return
        exc = batch.exception()
        if exc is not None:
            log.warning(
                "acknowledgements were not committed (%s); those deliveries come back when "
                "their leases end",
                exc,
            )


class SqliteConsumer(Consumer):
    """Claims ready deliveries of one group in batches and runs each in its own task.

    Args:
        writer: the transport's writer thread.
        spec: the group.
        deliver: the callback run for each delivery (it settles the delivery).
        clock: time source, for scheduled deliveries.
        lease: seconds a claim lasts unless renewed.
        poll_interval: seconds between safety polls when no wake-up comes.
        attach: called with the consumer once registered, so commits can wake it.
        detach: called with the consumer once stopped.
        acks: the transport's queue of acks, committed before the consumer unregisters.
    """

    def __init__(
        self,
        writer: WriterThread,
        spec: GroupSpec,
        deliver: Deliver,
        *,
        clock: Clock,
        lease: float,
        poll_interval: float,
        attach: Callable[[SqliteConsumer], None],
        detach: Callable[[SqliteConsumer], None],
        acks: AckQueue,
    ) -> None:
        self.id = uuid.uuid4().hex
        self._acks = acks
        self.gid = 0
        self._writer = writer
        self._spec = spec
        self._deliver = deliver
        self._clock = clock
        self._lease_seconds = lease
        self._poll = poll_interval
        self._attach = attach
        self._detach = detach
        self._batch = max(1, spec.concurrency // 4)
        self._wake_event = asyncio.Event()
        self._notified = True
        self._stopping = False
        self._stopped = False
        self._tasks: dict[asyncio.Task[None], Lease] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._renew_task: asyncio.Task[None] | None = None

    async def start(self, port: int) -> None:
        """Register, then start claiming and renewing."""
        self.gid = await self._writer.submit(RegisterOp(self.id, self._spec, port, os.getpid()))
        self._attach(self)
        name = f"tidings-sqlite-consumer-{self._spec.name}"
        self._loop_task = asyncio.create_task(self._run(), name=name)
        self._renew_task = asyncio.create_task(self._renew(), name=f"{name}-renew")

    def notify(self) -> None:
        """Deliveries may be ready (or due sooner): claim at the next chance."""
        self._notified = True
        self._wake_event.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        clock, poll = self._clock, self._poll
        next_due: float | None = None
        last_claim = -poll
        while not self._stopping:
            free = self._spec.concurrency - len(self._tasks)
            # While handlers run, claim in batches of at least a quarter of the window: one
            # claim per finished handler would cost a transaction per delivery.
            enough = free >= (self._batch if self._tasks else 1)
            due = (
                self._notified
                or loop.time() - last_claim >= poll
                or (next_due is not None and clock.time() >= next_due)
            )
            if enough and due:
                self._notified = False
                last_claim = loop.time()
                going, next_due = await self._claim(free)
                if not going:
                    return
                continue
            timeout: float | None = None
            if enough:
                timeout = poll - (loop.time() - last_claim)
                if next_due is not None:
                    timeout = min(timeout, next_due - clock.time())
            self._wake_event.clear()
            # Re-check after clearing: a notification may have come during the claim.
            if self._stopping or (enough and self._notified):
                continue
            if timeout is None or timeout > 0:
                await self._sleep(timeout)

    async def _claim(self, free: int) -> tuple[bool, float | None]:
        """Claim up to `free` deliveries and start a task for each. Returns whether to go
        on, and when the next scheduled delivery of the group is due (if known)."""
        running = frozenset(lease.row_id for lease in self._tasks.values())
        op = ClaimOp(self._spec.name, self.gid, free, self.id, self._lease_seconds, running)
        try:
            deliveries, next_due = await self._writer.submit(op)
        except StateError:
            return False, None
        except TidingsError as exc:
            log.warning("group %s: claiming failed: %s", self._spec.name, exc)
            return True, None
        if self._stopping:
            await self._release([cast(Lease, d.handle) for d in deliveries], False)
            return False, None
        for delivery in deliveries:
            self._spawn(delivery)
        if len(deliveries) == free:
            self._notified = True  # there may be more; claim when capacity frees
        return True, next_due

    async def _sleep(self, timeout: float | None) -> None:
        """Wait for a wake-up, or `timeout` seconds when given."""
        if timeout is None:
            await self._wake_event.wait()
            return
        # A bare timer is much cheaper than asyncio.timeout on this hot loop.
        timer = asyncio.get_running_loop().call_later(timeout, self._wake_event.set)
        try:
            await self._wake_event.wait()
        finally:
            timer.cancel()

    def _spawn(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._run_one(delivery))
        self._tasks[task] = cast(Lease, delivery.handle)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        # Wake the claim loop only when a batch's worth of room has opened (or none run).
        left = len(self._tasks)
        if left == 0 or left == self._spec.concurrency - self._batch:
            self._wake_event.set()

    async def _run_one(self, delivery: Delivery) -> None:
        try:
            await self._deliver(delivery)
        except Exception:
            # Left unsettled: the lease is no longer renewed, expires, and the delivery
            # returns with attempt + 1 (a natural back-off for a broken callback).
            cast(Lease, delivery.handle).settled = True
            log.exception(
                "group %s: the deliver callback failed on %s without settling it",
                self._spec.name,
                delivery.id,
            )

    async def _renew(self) -> None:
        interval = self._lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            leases = [lease for lease in self._tasks.values() if not lease.settled]
            if leases:
                try:
                    await self._writer.submit(RenewOp(leases, self._lease_seconds))
                except TidingsError as exc:
                    log.warning("group %s: renewing leases failed: %s", self._spec.name, exc)

    async def _release(self, leases: list[Lease], count_attempt: bool) -> None:
        if leases:
            try:
                await self._writer.submit(ReleaseOp(leases, count_attempt))
            except TidingsError as exc:
                log.warning("group %s: releasing leases failed: %s", self._spec.name, exc)

    async def stop(self, timeout: float) -> None:
        """Stop claiming, wait up to `timeout` seconds for running handlers, cancel the rest
        and give their deliveries back to the group (attempt counted), then unregister."""
        if self._stopped:
            return
        self._stopped = self._stopping = True
        self._wake_event.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=max(timeout, 0.0))
            if pending:
                leases = [self._tasks[t] for t in pending if t in self._tasks]
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
                await self._release([x for x in leases if not x.settled], True)
        if self._renew_task is not None:
            self._renew_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renew_task
        await self._acks.flush()
        # Detached first: a heartbeat queued after the unregistration would register it again
        # (heartbeats re-create registrations a clean-up removed), for 30 s of a ghost.
        self._detach(self)
        try:
            await self._writer.submit(UnregisterOp(self.id))
        except TidingsError as exc:
            log.warning("group %s: unregistering the consumer failed: %s", self._spec.name, exc)
