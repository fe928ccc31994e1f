"""The threads that talk to the broker file: one writer doing group commit, one reader.

``sqlite3`` calls block, so they never run on the event loop. The writer thread owns one
connection and a queue of `WriteOp`; it takes everything queued, runs it in one
``BEGIN IMMEDIATE`` transaction, commits (the confirm of every publish in it), then resolves
the ops' futures on the loop with a single ``call_soon_threadsafe`` and sends the wake-up
datagrams. The reader thread owns a second connection for queries (stats, dead-letter
listing, dedupe lookups) so they never wait behind a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..._clock import Clock
from ..._exceptions import StateError
from ._connect import connect
from ._errors import LockTimeout, is_busy, is_environmental, translate_error
from ._identity import FileIdentity
from ._ops import CleanupOp
from ._schema import DEFAULT_NAMESPACE
from ._txn import Topology, Txn, WriteOp
from ._wakeup import REPLIES, WakeSender, encode_groups

__all__ = ["ReaderThread", "StoreSettings", "WriterThread"]

log = logging.getLogger("tidings.sqlite")

T = TypeVar("T")
_STOP = object()
_Outcome = list[tuple["asyncio.Future[Any] | None", object, BaseException | None]]


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How the threads open and use the file.

    Attributes:
        path: the database file.
        synchronous: ``PRAGMA synchronous`` of commits holding a durable op (publishes,
            topology, DLQ moves); FULL is durable against power loss.
        settle_synchronous: ``PRAGMA synchronous`` of the other commits (claims, lease
            renewals, settles), whose loss on power failure only causes a redelivery.
        busy_timeout: seconds to wait for another process's write lock before failing.
        max_batch: most queued operations run in one transaction.
        file_mode: permission bits of a database file the writer creates.
        namespace: the bus name; the writer sees the groups of this namespace only.
    """

    path: Path
    synchronous: str = "FULL"
    settle_synchronous: str = "NORMAL"
    busy_timeout: float = 10.0
    max_batch: int = 1024
    file_mode: int = 0o600
    namespace: str = DEFAULT_NAMESPACE


def _resolve(outcome: _Outcome) -> None:
    for future, result, error in outcome:
        if future is None or future.done():
            continue  # the caller gave up waiting (cancelled)
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class _DbThread(threading.Thread):
    """A thread with its own connection serving a queue of jobs in batches."""

    create = False

    def __init__(self, name: str, settings: StoreSettings, clock: Clock) -> None:
        super().__init__(name=name, daemon=True)
        self.settings = settings
        self.clock = clock
        self.loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._ready: asyncio.Future[None] = self.loop.create_future()
        self._stopped: asyncio.Future[None] = self.loop.create_future()
        self._closing = False

    async def open(self) -> None:
        """Start the thread and wait until its connection is open (or raise why not)."""
        self.start()
        await self._ready

    async def close(self) -> None:
        """Finish what is queued, close the connection and end the thread."""
        if not self._closing:
            self._closing = True
            self._queue.put(_STOP)
        if self.is_alive() or not self._stopped.done():
            await asyncio.shield(self._stopped)
        self.join()

    def _enqueue(self, job: object, future: asyncio.Future[Any]) -> None:
        if self._closing:
            raise StateError(f"the sqlite transport on {self.settings.path} is closed")
        self._queue.put(job)

    def _post(self, callback: Callable[..., object], *args: object) -> None:
        # RuntimeError: the event loop is closed, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(callback, *args)

    def run(self) -> None:
        try:
            conn = connect(
                self.settings.path,
                synchronous=self.settings.synchronous,
                busy_timeout=self.settings.busy_timeout,
                create=self.create,
                file_mode=self.settings.file_mode,
            )
        except BaseException as exc:
            self._post(_resolve, [(self._ready, None, exc), (self._stopped, None, None)])
            return
        self._post(_resolve, [(self._ready, None, None)])
        try:
            self._configure(conn)
            self._serve(conn)
        finally:
            conn.close()
            self._finished()
            self._post(_resolve, [(self._stopped, None, None)])

    def _configure(self, conn: sqlite3.Connection) -> None:
        """Per-thread connection settings (the default has none)."""

    def _finished(self) -> None:
        """Release per-thread resources (the default has none)."""

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self.settings.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                jobs.append(job)
            try:
                self._handle(conn, jobs)
            except BaseException:  # pragma: no cover - _handle reports every error itself
                log.exception("tidings sqlite %s thread failed a batch", self.name)
            if stop:
                return

    def _handle(self, conn: sqlite3.Connection, jobs: list[Any]) -> None:
        """Run one batch of jobs on this thread's connection (each subclass its own kind)."""
        raise NotImplementedError


class ReaderThread(_DbThread):
    """Runs read-only queries on its own connection."""

    def __init__(self, settings: StoreSettings, clock: Clock) -> None:
        super().__init__("tidings-sqlite-reader", settings, clock)

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA query_only = ON")

    async def read(self, query: Callable[[sqlite3.Connection, float], T]) -> T:
        """Run ``query(conn, now)`` on the reader thread and return its result."""
        future: asyncio.Future[T] = self.loop.create_future()
        self._enqueue((query, future), future)
        return await future

    def _handle(self, conn: sqlite3.Connection, jobs: list[Any]) -> None:
        outcome: _Outcome = []
        for query, future in jobs:
            try:
                outcome.append((future, query(conn, self.clock.time()), None))
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                outcome.append((future, None, translate_error(exc, self.settings.path)))
        self._post(_resolve, outcome)


class WriterThread(_DbThread):
    """Runs `WriteOp` batches, one transaction each; see the module docstring.

    Args:
        settings: file and connection settings.
        clock: time source for timestamps.
        host: this machine's name (wake-up ports are registered per host).
        on_commit: called on the loop with the groups a commit made deliveries available
            to, for this process's own consumers.
    """

    create = True

    def __init__(
        self,
        settings: StoreSettings,
        clock: Clock,
        host: str,
        on_commit: Callable[[set[int]], None],
    ) -> None:
        super().__init__("tidings-sqlite-writer", settings, clock)
        self.topology = Topology(host, settings.namespace)
        self.own_port = 0
        self._synchronous = settings.synchronous
        self._on_commit = on_commit
        self._sender = WakeSender()
        self._identity: FileIdentity | None = None
        self._reply_ports: set[int] = set()

    def submit(self, op: WriteOp) -> asyncio.Future[Any]:
        """Queue `op`; the returned future resolves after the commit that contains it."""
        future: asyncio.Future[Any] = self.loop.create_future()
        op.future = future
        self._enqueue(op, future)
        return future

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 0")  # `_transaction` waits for locks itself
        self._identity = FileIdentity(self.settings.path)

    def _finished(self) -> None:
        self._sender.close()

    def _handle(self, conn: sqlite3.Connection, jobs: list[Any]) -> None:
        ops: list[WriteOp] = jobs
        notify: set[int] = set()
        outcome: _Outcome = []
        try:
            results = self._transaction(conn, ops, notify)
            outcome = [(op.future, r, None) for op, r in zip(ops, results, strict=True)]
        except BaseException as exc:
            self.topology.invalidate()
            if len(ops) > 1 and not is_environmental(exc):
                # Only some op is at fault: run them one by one so the others succeed.
                for op in ops:
                    try:
                        (result,) = self._transaction(conn, [op], notify)
                        outcome.append((op.future, result, None))
                    except BaseException as one_exc:
                        self.topology.invalidate()
                        error = translate_error(one_exc, self.settings.path)
                        outcome.append((op.future, None, error))
            else:
                error = translate_error(exc, self.settings.path)
                outcome = [(op.future, None, error) for op in ops]
        self._post(self._finish, outcome, notify)
        if notify:
            ports = {p for gid, p in self.topology.ports if gid in notify and p != self.own_port}
            if ports:
                self._sender.send(ports, encode_groups(notify))
        if self._reply_ports:
            # This process's own inboxes are woken by the transport after the commit.
            self._reply_ports.discard(self.own_port)
            self._sender.send(self._reply_ports, REPLIES)
            self._reply_ports.clear()

    def _finish(self, outcome: _Outcome, notify: set[int]) -> None:
        _resolve(outcome)
        if notify:
            self._on_commit(notify)

    def _transaction(
        self, conn: sqlite3.Connection, ops: Sequence[WriteOp], notify: set[int]
    ) -> list[object]:
        """Run `ops` in one transaction, waiting for other processes' write locks with short
        sleeps (SQLite's own busy handler backs off to tens of milliseconds, far above a
        typical commit); give up after the busy timeout."""
        deadline = time.monotonic() + self.settings.busy_timeout
        delay = 0.0001
        while True:
            try:
                return self._attempt(conn, ops, notify)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"waited {self.settings.busy_timeout:g} s") from exc
                time.sleep(delay)
                delay = min(delay * 1.1, 0.002)

    def _attempt(
        self, conn: sqlite3.Connection, ops: Sequence[WriteOp], notify: set[int]
    ) -> list[object]:
        by_class: dict[type[WriteOp], list[int]] = {}
        for i, op in enumerate(ops):
            by_class.setdefault(type(op), []).append(i)
        order = sorted(by_class, key=lambda cls: cls.phase)
        results: list[object] = [None] * len(ops)
        durable = any(cls.durable for cls in by_class)
        level = self.settings.synchronous if durable else self.settings.settle_synchronous
        if level != self._synchronous:
            conn.execute(f"PRAGMA synchronous = {level}")
            self._synchronous = level
        if self._identity is not None:
            self._identity.check()
        conn.execute("BEGIN IMMEDIATE")
        try:
            self.topology.refresh(conn)
            tx = Txn(conn, self.clock.time(), self.topology)
            for cls in order:
                indexes = by_class[cls]
                for i, result in zip(
                    indexes, cls.apply_all(tx, [ops[i] for i in indexes]), strict=True
                ):
                    results[i] = result
            tx.flush_counters()
            conn.execute("COMMIT")
            if self._identity is not None:
                # Deleted during the transaction: what was just committed is lost with it.
                self._identity.check()
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self.topology.invalidate()
            raise
        notify.update(tx.notify)
        self._reply_ports.update(tx.reply_ports)
        if CleanupOp in by_class:
            self._compact(conn)
        return results

    def _compact(self, conn: sqlite3.Connection) -> None:
        """Return free pages to the file system once they are a quarter of the file, and
        checkpoint the WAL. Best effort: what cannot run now runs after the next clean-up."""
        with contextlib.suppress(sqlite3.Error):
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            if free > 256 and free * 4 > pages:
                # executescript steps the pragma to completion; execute() frees one page.
                conn.executescript(f"PRAGMA incremental_vacuum({int(free)});")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
