"""The embedded durable broker: one SQLite file shared by every process on the host.

Publishing commits before it returns; concurrent publishes, settles and claims are
group-committed by one writer thread per transport (see `_store`). Consumers lease
deliveries, renew the leases while handlers run, and wake within milliseconds of a commit in
any process (see `_wakeup`). Published events stay in a retained log for `replay`.

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

from ..._exceptions import ConfigError, DeadLetterNotFound, StateError, TidingsError
from .._failure import Failure, RawDeadLetter
from .._group import GroupSpec
from .._message import Delivery, OutgoingMessage
from .._options import TransportOptions
from .._stats import GroupStats
from .._transport import CAP_DEDUPE, CAP_REPLAY_LOG, Consumer, DedupeStore, Deliver, Transport
from ._consume_ops import DeadLetterOp, HeartbeatOp, RetryOp
from ._consumer import AckQueue, SqliteConsumer
from ._dedupe import SqliteDedupeStore
from ._ops import CleanupOp, DeclareOp, DlqMoveOp, DlqPurgeOp, ReplayOp
from ._options import SqliteOptions
from ._publisher import PublishQueue
from ._queries import (
    CONSUMER_STALE_AFTER,
    dead_letter_bound,
    dead_letters_by_id,
    dead_letters_page,
    log_overflow,
    ping,
    read_stats,
)
from ._schema import sqlite_path
from ._store import ReaderThread, StoreSettings, WriterThread
from ._txn import Lease
from ._wakeup import WakeListener

__all__ = ["SqliteTransport", "sqlite_path"]

log = logging.getLogger("tidings.sqlite")

_HEARTBEAT = 5.0
_DLQ_PAGE = 500


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
    capabilities = frozenset({CAP_REPLAY_LOG, CAP_DEDUPE})

    def __init__(
        self, url: str, options: TransportOptions, settings: SqliteOptions | None = None
    ) -> None:
        super().__init__(url, options)
        self.path = sqlite_path(url)
        if options.lease <= 0:
            raise ConfigError(f"lease must be positive, not {options.lease!r}")
        self._tuning = settings if settings is not None else SqliteOptions()
        self._clock = options.clock
        self._state = "new"
        self._writer: WriterThread | None = None
        self._reader: ReaderThread | None = None
        self._listener: WakeListener | None = None
        self._listener_lock = asyncio.Lock()
        self._housekeeper: asyncio.Task[None] | None = None
        self._consumers: dict[int, set[SqliteConsumer]] = {}
        self._dedupe = SqliteDedupeStore(self._open_reader, self._open_writer)
        self._acks: AckQueue | None = None
        self._publishes: PublishQueue | None = None

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
                listener = WakeListener(self._wake)
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
        """Append to the log and fan out; return after the commit, with routed flags."""
        writer = self._open_writer()
        if not messages:
            return []
        if self._publishes is None:
            self._publishes = PublishQueue(writer)
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
        await self._open_writer().submit(RetryOp(lease, delay, failure))

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """Move the delivery to its group's dead-letter queue."""
        lease = _lease_of(delivery)
        lease.settled = True
        await self._open_writer().submit(DeadLetterOp(lease, delivery, failure))

    # -- dead letters ---------------------------------------------------------------------

    async def dlq_list(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        """Dead letters of `group`, oldest first."""
        page = await self._open_reader().read(
            lambda conn, now: dead_letters_page(conn, now, group, limit, offset)
        )
        return [entry for _, entry in page]

    async def dlq_get(self, group: str, entry_id: str) -> RawDeadLetter:
        """One dead letter; raise `DeadLetterNotFound` when missing."""
        found = await self._open_reader().read(
            lambda conn, now: dead_letters_by_id(conn, now, group, [entry_id])
        )
        if not found:
            raise DeadLetterNotFound(f"no dead letter {entry_id!r} in group {group!r}")
        return found[0][1]

    async def dlq_replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        """Move entries back to `group` a page at a time; each page's messages and the
        deletion of its entries commit together."""
        reader, writer = self._open_reader(), self._open_writer()
        moved = 0
        if entry_ids is not None:
            ids = list(entry_ids)
            for start in range(0, len(ids), _DLQ_PAGE):
                chunk = ids[start : start + _DLQ_PAGE]
                page = await reader.read(
                    lambda conn, now, chunk=chunk: dead_letters_by_id(conn, now, group, chunk)  # type: ignore[misc]
                )
                moved += await self._move(writer, group, [e for _, e in page], rebuild)
            return moved
        upto = await reader.read(lambda conn, now: dead_letter_bound(conn, now, group))
        after = 0
        while True:
            page = await reader.read(
                lambda conn, now, after=after: dead_letters_page(  # type: ignore[misc]
                    conn, now, group, _DLQ_PAGE, after=after, upto=upto
                )
            )
            if not page:
                return moved
            after = page[-1][0]
            moved += await self._move(writer, group, [e for _, e in page], rebuild)

    @staticmethod
    async def _move(
        writer: WriterThread,
        group: str,
        entries: list[RawDeadLetter],
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        if not entries:
            return 0
        moves = [(entry.entry_id, rebuild(entry)) for entry in entries]
        return cast(int, await writer.submit(DlqMoveOp(group, moves)))

    async def dlq_purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        """Delete entries (all when `entry_ids` is None); return how many."""
        ids = None if entry_ids is None else list(entry_ids)
        return cast(int, await self._open_writer().submit(DlqPurgeOp(group, ids)))

    # -- observing ------------------------------------------------------------------------

    async def stats(self) -> list[GroupStats]:
        """Counters of every declared group, sorted by name."""
        return await self._open_reader().read(read_stats)

    async def ping(self) -> None:
        """Raise unless the file answers a query."""
        await self._open_reader().read(ping)

    def dedupe_store(self) -> DedupeStore:
        """Dedupe markers kept in the same file."""
        return self._dedupe
