"""Reply inboxes of the embedded broker: request/reply (`Transport.open_replies`).

A bus instance that makes requests owns one inbox in the file: a row of ``inboxes``
(address ``sqlite-reply:<uuid>``, namespace, wake-up port, expiry) and the replies waiting in
it, in ``replies``. `send_reply`, from any process on the file, stores a reply in one short
write transaction and wakes the owner with a datagram (`_wakeup.REPLIES`) to the port its
consumers use too; the owner takes its replies in order of arrival, deleting them in the
same transaction, and hands each to its ``on_reply``. A slow poll (a cheap read) is the
safety net for a lost datagram, so an idle inbox costs next to nothing.

The owner pushes its inbox's expiry one lease ahead every third of a lease. An inbox whose
owner died without closing it expires after one lease, and the next sweep deletes it with
the replies it held: every inbox heartbeat and every clean-up (`CleanupOp`) of any process
on the file sweeps. Replies to an inbox that is gone are dropped (logged at debug level).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import uuid
from collections.abc import Awaitable, Callable

from ..._exceptions import StateError, TidingsError
from .._message import OutgoingMessage
from .._transport import OnReply, Replies
from ._reply_ops import CloseInboxOp, InboxOp, SendReplyOp, TakeRepliesOp
from ._store import ReaderThread, WriterThread

__all__ = ["ReplyInboxes", "SqliteReplies"]

log = logging.getLogger("tidings.sqlite")

_ADDRESS_PREFIX = "sqlite-reply:"
_BATCH = 256
"""Most replies taken in one transaction."""


class SqliteReplies(Replies):
    """One inbox: takes the replies sent to `address` and hands them to `on_reply`.

    Args:
        address: the inbox's address (unique in the file).
        writer: returns the open transport's writer thread (raises once it is closed).
        reader: likewise, its reader thread.
        on_reply: called on the event loop with each reply, in order of arrival.
        lease: seconds the inbox outlives its owner's last heartbeat.
        poll_interval: seconds between safety polls when no wake-up comes.
        detach: called with the inbox once closed.
    """

    def __init__(
        self,
        address: str,
        *,
        writer: Callable[[], WriterThread],
        reader: Callable[[], ReaderThread],
        on_reply: OnReply,
        lease: float,
        poll_interval: float,
        detach: Callable[[SqliteReplies], None],
    ) -> None:
        self.address = address
        self._writer = writer
        self._reader = reader
        self._on_reply = on_reply
        self._lease = lease
        self._poll = poll_interval
        self._detach = detach
        self._port = 0
        self._wake_event = asyncio.Event()
        self._notified = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, port: int) -> None:
        """Create the inbox in the file (waking on `port`), then start taking and renewing."""
        self._port = port
        await self._writer().submit(self._heartbeat_op())
        name = f"tidings-sqlite-replies-{self.address}"
        self._tasks = [
            asyncio.create_task(self._run(), name=name),
            asyncio.create_task(self._renew(), name=f"{name}-renew"),
        ]

    def notify(self) -> None:
        """Replies may be waiting: take them at the next chance."""
        self._notified = True
        self._wake_event.set()

    def _heartbeat_op(self) -> InboxOp:
        return InboxOp(self.address, self._port, os.getpid(), self._lease)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._notified:
                self._notified = False
                if not await self._take():
                    return
                continue
            self._wake_event.clear()
            if self._notified:  # a notification came while taking
                continue
            timer = loop.call_later(self._poll, self._wake_event.set)
            try:
                await self._wake_event.wait()
            finally:
                timer.cancel()
            # A notification during the poll's read must not be overwritten by its answer.
            if not self._notified and await self._waiting():
                self._notified = True

    async def _take(self) -> bool:
        """Take waiting replies and hand them over; False once the transport is closed."""
        try:
            replies = await self._writer().submit(TakeRepliesOp(self.address, _BATCH))
        except StateError:
            return False
        except TidingsError as exc:
            log.warning("reply inbox %s: taking replies failed: %s", self.address, exc)
            return True
        for reply in replies:
            try:
                self._on_reply(reply)
            except Exception:
                log.exception("reply inbox %s: on_reply failed on %s", self.address, reply.id)
        if len(replies) == _BATCH:
            self._notified = True
        return True

    async def _waiting(self) -> bool:
        """The safety poll: whether a reply waits (a read, so an idle inbox writes nothing)."""
        address = self.address

        def query(conn: sqlite3.Connection, now: float) -> bool:
            row = conn.execute("SELECT 1 FROM replies WHERE inbox = ? LIMIT 1", (address,))
            return row.fetchone() is not None

        try:
            return await self._reader().read(query)
        except StateError:
            return True  # the transport is closed: `_take` finds out and stops
        except TidingsError as exc:
            log.warning("reply inbox %s: polling failed: %s", self.address, exc)
            return False

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self._writer().submit(self._heartbeat_op())
            except StateError:
                return
            except TidingsError as exc:
                log.warning("reply inbox %s: renewing failed: %s", self.address, exc)

    async def close(self) -> None:
        """Stop taking replies, and remove the inbox and the replies still in it."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._detach(self)
        try:
            await self._writer().submit(CloseInboxOp(self.address))
        except StateError:
            pass  # the transport is closed: the inbox expires after one lease
        except TidingsError as exc:
            log.warning("reply inbox %s: removing it failed (it expires): %s", self.address, exc)


class ReplyInboxes:
    """The reply inboxes of one transport, and the replies it sends.

    Args:
        writer: returns the open transport's writer thread (raises once it is closed).
        reader: likewise, its reader thread.
        listen: starts (once) the process's wake-up listener and returns its port (0 when
            wake-ups are off).
        lease: seconds an inbox outlives its owner's last heartbeat.
        poll_interval: seconds between an inbox's safety polls.
    """

    def __init__(
        self,
        writer: Callable[[], WriterThread],
        reader: Callable[[], ReaderThread],
        listen: Callable[[], Awaitable[int]],
        *,
        lease: float,
        poll_interval: float,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._listen = listen
        self._lease = lease
        self._poll = poll_interval
        self._inboxes: dict[str, SqliteReplies] = {}

    async def open(self, on_reply: OnReply) -> SqliteReplies:
        """Create a new inbox in the file and start taking its replies."""
        self._writer()  # a clear StateError before anything starts
        inbox = SqliteReplies(
            f"{_ADDRESS_PREFIX}{uuid.uuid4().hex}",
            writer=self._writer,
            reader=self._reader,
            on_reply=on_reply,
            lease=self._lease,
            poll_interval=self._poll,
            detach=self._detach,
        )
        await inbox.start(await self._listen())
        self._inboxes[inbox.address] = inbox
        return inbox

    async def send(self, address: str, message: OutgoingMessage) -> None:
        """Store `message` in the inbox at `address` and wake its owner; drop it when there
        is no such inbox in this bus's namespace."""
        stored = await self._writer().submit(SendReplyOp(address, message))
        if not stored:
            log.debug(
                "dropped reply %s to %s: no such inbox (closed or expired)", message.id, address
            )
            return
        inbox = self._inboxes.get(address)
        if inbox is not None:
            inbox.notify()  # ours: the writer sends no datagram to its own process

    def _detach(self, inbox: SqliteReplies) -> None:
        self._inboxes.pop(inbox.address, None)

    def wake(self) -> None:
        """A wake-up datagram said a reply came: every inbox of this transport looks."""
        for inbox in self._inboxes.values():
            inbox.notify()

    async def close(self) -> None:
        """Close every inbox still open."""
        for inbox in list(self._inboxes.values()):
            await inbox.close()
