"""The embedded durable broker: one SQLite file shared by every process on the host.

Publishing commits before it returns; concurrent publishes, settles and claims are
group-committed by one writer thread per transport (see `_store`). Consumers lease
deliveries, renew the leases while handlers run, and wake within milliseconds of a commit in
any process (see `_wakeup`). Published events stay in a retained log for `replay`. A bus
that makes requests gets a reply inbox in the file, which expires when its owner is gone
(see `_replies`).

The bus name (`TransportOptions.name`) is the namespace: buses of different names on one
file share nothing (groups, bindings, dead letters, dedupe markers, the retained log,
stats). A publish call is stored whole or not at all (`CAP_ATOMIC_BATCH`, ``max_ready``
bounds: see `_publisher`).

URLs follow SQLAlchemy: ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``.
The broker's own options (``synchronous``, ``durable_settle``, ``poll_interval``,
``busy_timeout``, ``cleanup_interval``, ``wake``, ``file_mode``, ``retention_bytes``) are
described in `SqliteOptions`.

Open the transport after forking, never before: a connection must not cross a fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import cast

from ..._exceptions import ConfigError, StateError, TidingsError
from .._failure import Failure, RawDeadLetter
from .._group import GroupSpec
from .._message import Delivery, OutgoingMessage
from .._options import TransportOptions
from .._stats import GroupStats
from .._transport import (
    CAP_ATOMIC_BATCH,
    CAP_DEDUPE,
    CAP_REPLAY_LOG,
    Consumer,
    DedupeStore,
    Deliver,
    OnReply,
    Replies,
    Transport,
)
from ._connect import sqlite_path
from ._consume_ops import DeadLetterOp, HeartbeatOp, RetryOp
from ._consumer import AckQueue, SqliteConsumer
from ._dead_letters import DeadLetterQueues
from ._dedupe import SqliteDedupeStore
from ._ops import CleanupOp, DeclareOp, ReplayOp
from ._options import SqliteOptions
from ._publisher import PublishQueue
from ._queries import CONSUMER_STALE_AFTER, log_overflow, ping, read_stats
from ._replies import ReplyInboxes
from ._store import ReaderThread, StoreSettings, WriterThread
from ._txn import Lease
from ._wakeup import WakeListener

__all__ = ["SqliteTransport", "sqlite_path"]

log = logging.getLogger("tidings.sqlite")

_HEARTBEAT = 5.0


def _lease_of(delivery: Delivery) -> Lease:
    lease = delivery.handle
    if not isinstance(lease, Lease):
        raise ConfigError("this delivery was not handed out by a sqlite transport")
    return lease


class SqliteTransport(Transport):
    """The embedded broker. See the module docstring for URLs and options.

    Args:
        url: ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``.
        options: the common settings; `lease`, `retention`, `dedupe_ttl` and `clock` are
            used here.
        settings: the embedded broker's own options (defaults when None).

    Raises:
        ConfigError: a malformed URL or option (at construction), a missing directory, a
            foreign, corrupt or unwritable file (at `open`).
    """

    scheme = "sqlite"
    capabilities = frozenset({CAP_REPLAY_LOG, CAP_DEDUPE, CAP_ATOMIC_BATCH})

    def __init__(
        self, url: str, options: TransportOptions, settings: SqliteOptions | None = None
    ) -> None:
        super().__init__(url, options)
        self.path = sqlite_path(url)
        if options.lease <= 0:
            raise ConfigError(f"lease must be positive, not {options.lease!r}")
        if not isinstance(options.name, str) or not options.name:
            raise ConfigError(
                f"bus name {options.name!r}: the embedded broker needs a non-empty name "
                "(it is the namespace of the bus in its file)"
            )
        self.namespace = options.name
        self._tuning = settings if settings is not None else SqliteOptions()
        self._clock = options.clock
        self._state = "new"
        self._writer: WriterThread | None = None
        self._reader: ReaderThread | None = None
        self._listener: WakeListener | None = None
        self._listener_lock = asyncio.Lock()
        self._housekeeper: asyncio.Task[None] | None = None
        self._consumers: dict[int, set[SqliteConsumer]] = {}
        self._dedupe = SqliteDedupeStore(self._open_reader, self._open_writer, self.namespace)
        self._dlq = DeadLetterQueues(self._open_reader, self._open_writer, self.namespace)
        self._acks: AckQueue | None = None
        self._publishes: PublishQueue | None = None
        self._replies = ReplyInboxes(
            self._open_writer,
            self._open_reader,
            self._ensure_listener,
            lease=options.lease,
            poll_interval=self._tuning.poll_interval,
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating if needed) the database file and start the writer and reader."""
        if self._state != "new":
            raise StateError(f"the sqlite transport on {self.path} was already opened")
        self._state = "opening"
        sync = self._tuning.synchronous
        settings = StoreSettings(
            self.path,
            synchronous=sync,
            settle_synchronous=sync
            if self._tuning.durable_settle or sync in ("NORMAL", "OFF")
            else "NORMAL",
            busy_timeout=self._tuning.busy_timeout,
            file_mode=self._tuning.file_mode,
            namespace=self.namespace,
        )
        try:
            self._writer = WriterThread(settings, self._clock, socket.gethostname(), self._wake)
            await self._writer.open()
            self._reader = ReaderThread(settings, self._clock)
            await self._reader.open()
        except BaseException:
            await self.close()
            raise
        self._state = "open"
        self._housekeeper = asyncio.create_task(self._housekeeping(), name="tidings-sqlite-gc")

    async def close(self) -> None:
        """Stop consumers (cancelling their handlers), flush queued writes, close the file."""
        if self._state == "closed":
            return
        self._state = "closing"
        for consumer in [c for group in self._consumers.values() for c in group]:
            await consumer.stop(0.0)
        await self._replies.close()
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeper
        if self._listener is not None:
            self._listener.close()
        if self._acks is not None:
            await self._acks.flush()
        for thread in (self._writer, self._reader):
            if thread is not None and thread.is_alive():
                await thread.close()
        self._state = "closed"

    def _open_writer(self) -> WriterThread:
        if self._state not in ("open", "closing") or self._writer is None:
            raise StateError(f"the sqlite transport on {self.path} is not open")
        return self._writer

    def _ack_queue(self) -> AckQueue:
        if self._acks is None:
            self._acks = AckQueue(self._open_writer())
        return self._acks

    def _open_reader(self) -> ReaderThread:
        if self._state not in ("open", "closing") or self._reader is None:
            raise StateError(f"the sqlite transport on {self.path} is not open")
        return self._reader

    async def _housekeeping(self) -> None:
        writer = self._open_writer()
        stale_after = max(CONSUMER_STALE_AFTER, 3 * _HEARTBEAT)
        loop = asyncio.get_running_loop()
        next_cleanup = loop.time()
        while True:
            try:
                if loop.time() >= next_cleanup:
                    budget = functools.partial(log_overflow, budget=self._tuning.retention_bytes)
                    through = await self._open_reader().read(budget)
                    op = CleanupOp(self.options.retention, stale_after, log_through=through)
                    while await writer.submit(op):
                        op = CleanupOp(self.options.retention, stale_after, log_through=through)
                    next_cleanup = loop.time() + self._tuning.cleanup_interval
                registrations = [
                    (c.id, c.gid, self._port(), os.getpid())
                    for group in self._consumers.values()
                    for c in group
                ]
                if registrations:
                    await writer.submit(HeartbeatOp(registrations))
            except TidingsError as exc:
                log.warning("sqlite broker housekeeping failed: %s", exc)
            except Exception:
                log.exception("sqlite broker housekeeping failed")
            await asyncio.sleep(min(_HEARTBEAT, self._tuning.cleanup_interval))

    # -- wake-up --------------------------------------------------------------------------

    def _port(self) -> int:
        return self._listener.port if self._listener is not None else 0

    def _wake(self, gids: set[int] | frozenset[int] | None) -> None:
        """Wake this process's consumers of `gids` (all when None)."""
        if gids is None:
            targets = [c for group in self._consumers.values() for c in group]
        else:
            targets = [c for gid in gids for c in self._consumers.get(gid, ())]
        for consumer in targets:
            consumer.notify()

    async def _ensure_listener(self) -> int:
        if not self._tuning.wake:
            return 0
        async with self._listener_lock:
            if self._listener is None:
                listener = WakeListener(self._wake, self._replies.wake)
                self._open_writer().own_port = await listener.start()
                self._listener = listener
            return self._listener.port

    def _attach(self, consumer: SqliteConsumer) -> None:
        self._consumers.setdefault(consumer.gid, set()).add(consumer)

    def _detach(self, consumer: SqliteConsumer) -> None:
        group = self._consumers.get(consumer.gid)
        if group is not None:
            group.discard(consumer)
            if not group:
                del self._consumers[consumer.gid]

    # -- topology and publishing ----------------------------------------------------------

    async def declare(self, groups: Sequence[GroupSpec]) -> None:
        """Create or update groups and replace their bindings, visible to every process."""
        if groups:
            await self._open_writer().submit(DeclareOp(groups))

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        """Append to the log and fan out; return after the commit, with routed flags.

        The call is stored whole or not at all: nothing of it when a group it reaches is
        at its ``max_ready`` (`QueueFull`, naming the groups), or when one of its messages
        is unroutable and the bus raises on those. An unroutable message is never kept."""
        writer = self._open_writer()
        if not messages:
            return []
        if self._publishes is None:
            atomic = self.options.on_unroutable == "error"
            self._publishes = PublishQueue(writer, atomic=atomic)
        return await self._publishes.publish(messages)

    async def replay(self, group: str, since: float) -> int:
        """Re-deliver retained events published at or after `since` matching `group`."""
        return cast(int, await self._open_writer().submit(ReplayOp(group, since)))

    # -- consuming and settling -----------------------------------------------------------

    async def consume(self, group: GroupSpec, deliver: Deliver) -> Consumer:
        """Start a consumer of `group` (declaring it if nobody did)."""
        self._open_writer()
        if group.concurrency < 1:
            raise ConfigError(f"group {group.name!r}: concurrency must be at least 1")
        consumer = SqliteConsumer(
            self._open_writer(),
            group,
            deliver,
            clock=self._clock,
            lease=self.options.lease,
            poll_interval=self._tuning.poll_interval,
            attach=self._attach,
            detach=self._detach,
            acks=self._ack_queue(),
        )
        await consumer.start(await self._ensure_listener())
        return consumer

    async def ack(self, delivery: Delivery) -> None:
        """Delete the delivery (committed with the other acks of this turn: `AckQueue`)."""
        lease = _lease_of(delivery)
        lease.settled = True
        await self._ack_queue().ack(lease)

    def ack_soon(self, delivery: Delivery) -> bool:
        """Queue the ack for the next commit without waiting for it (`AckQueue`)."""
        lease = _lease_of(delivery)
        lease.settled = True
        self._ack_queue().ack(lease)
        return True

    async def retry_later(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        """Reschedule after `delay` seconds with attempt + 1, keeping its place in its key."""
        lease = _lease_of(delivery)
        lease.settled = True
        await self._open_writer().submit(RetryOp(lease, delay, failure.at))

    async def postpone(self, delivery: Delivery, delay: float) -> None:
        """Reschedule after `delay` seconds with its attempt unchanged, keeping its place in
        its key (never refused by a group's ``max_ready``)."""
        lease = _lease_of(delivery)
        lease.settled = True
        await self._open_writer().submit(RetryOp(lease, delay, None))

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """Move the delivery to its group's dead-letter queue."""
        lease = _lease_of(delivery)
        lease.settled = True
        await self._open_writer().submit(DeadLetterOp(lease, delivery, failure))

    # -- request/reply --------------------------------------------------------------------

    async def open_replies(self, on_reply: OnReply) -> Replies:
        """Open a reply inbox in the file (see `_replies`): replies sent to its address from
        any process reach `on_reply` in order of arrival; it expires one lease after this
        process stops renewing it (closed, or killed)."""
        return await self._replies.open(on_reply)

    async def send_reply(self, address: str, message: OutgoingMessage) -> None:
        """Store a reply for the inbox at `address` (durably) and wake its owner; a reply to
        an inbox that is gone is dropped."""
        await self._replies.send(address, message)

    # -- dead letters ---------------------------------------------------------------------

    async def dlq_list(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        """Dead letters of `group`, oldest first."""
        return await self._dlq.list(group, limit, offset)

    async def dlq_get(self, group: str, entry_id: str) -> RawDeadLetter:
        """One dead letter; raise `DeadLetterNotFound` when missing."""
        return await self._dlq.get(group, entry_id)

    async def dlq_replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        """Move entries back to `group` a page at a time; each page's messages and the
        deletion of its entries commit together."""
        return await self._dlq.replay(group, entry_ids, rebuild)

    async def dlq_purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        """Delete entries (all when `entry_ids` is None); return how many."""
        return await self._dlq.purge(group, entry_ids)

    # -- observing ------------------------------------------------------------------------

    async def stats(self) -> list[GroupStats]:
        """Counters of every declared group of this bus's namespace, sorted by name."""
        ns = self.namespace
        return await self._open_reader().read(lambda conn, now: read_stats(conn, now, ns))

    async def ping(self) -> None:
        """Raise unless the file answers a query."""
        await self._open_reader().read(ping)

    def dedupe_store(self) -> DedupeStore:
        """Dedupe markers kept in the same file."""
        return self._dedupe
