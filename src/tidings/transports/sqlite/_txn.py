"""The writer thread's transaction context and the base of every write operation.

Every operation is applied inside one ``BEGIN IMMEDIATE`` transaction together with whatever
else was queued at the same time. Operations of one batch were all pending at once, so any
order among them is a valid serialisation; the writer runs them by `WriteOp.phase` (topology
first, then publishes, then settles, then claims), and operations of one class that can share
a statement (publishes, acks, dedupe marks) run as one ``executemany``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..._exceptions import ConfigError
from .._group import GroupSpec
from .._routing import matches

__all__ = [
    "COUNTER_BUCKET",
    "INSERT_DELIVERY",
    "INSERT_LOG",
    "Lease",
    "Topology",
    "Txn",
    "WriteOp",
    "encode_headers",
    "insert_group",
]


COUNTER_BUCKET = 10
"""Seconds per row of the publish and ack counters."""


def encode_headers(headers: Mapping[str, str]) -> str | None:
    """Headers as compact JSON text, or None when there are none (the common case)."""
    if not headers:
        return None
    return json.dumps(dict(headers), separators=(",", ":"))


@dataclass(slots=True)
class Lease:
    """`Delivery.handle` of the embedded broker: which row, claimed by whom, at which attempt.

    Settling is guarded by all three, so a consumer whose lease expired and was re-claimed
    elsewhere cannot settle the other consumer's delivery.
    """

    row_id: int
    attempt: int
    owner: str
    gid: int
    settled: bool = False


class Topology:
    """The writer's cache of its namespace's groups, bindings and wake-up ports, refreshed
    inside each transaction when the `state` row says another process changed them.

    Args:
        host: this machine's name (wake-up ports are registered per host).
        ns: the namespace (the bus name): only its groups are seen.
    """

    def __init__(self, host: str, ns: str) -> None:
        self.host = host
        self.ns = ns
        self.bindings_version = -1
        self.consumers_version = -1
        self.gids: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.ordered: dict[int, bool] = {}
        self.max_ready: dict[int, int] = {}
        self.patterns: dict[int, tuple[str, ...]] = {}
        self.routes: dict[str, tuple[int, ...]] = {}
        self.ports: list[tuple[int, int]] = []

    def invalidate(self) -> None:
        """Forget everything; the next transaction reloads."""
        self.bindings_version = self.consumers_version = -1

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Reload what changed since the last transaction (one tiny query when nothing did)."""
        bv, cv = conn.execute("SELECT bindings_version, consumers_version FROM state").fetchone()
        if bv != self.bindings_version:
            self.gids, self.names, self.ordered, self.max_ready, self.routes = {}, {}, {}, {}, {}
            for gid, name, ordered, max_ready in conn.execute(
                "SELECT gid, name, ordered, max_ready FROM groups WHERE ns = ?", (self.ns,)
            ):
                self.gids[name] = gid
                self.names[gid] = name
                self.ordered[gid] = bool(ordered)
                if max_ready is not None:
                    self.max_ready[gid] = max_ready
            found: dict[int, list[str]] = {}
            for gid, pattern in conn.execute(
                "SELECT b.gid, b.pattern FROM bindings AS b JOIN groups AS g ON g.gid = b.gid"
                " WHERE g.ns = ?",
                (self.ns,),
            ):
                found.setdefault(gid, []).append(pattern)
            self.patterns = {gid: tuple(p) for gid, p in found.items()}
            self.bindings_version = bv
        if cv != self.consumers_version:
            self.ports = conn.execute(
                "SELECT DISTINCT gid, wake_port FROM consumers WHERE host = ? AND wake_port > 0",
                (self.host,),
            ).fetchall()
            self.consumers_version = cv

    def route(self, routing_key: str) -> tuple[int, ...]:
        """Groups with a pattern matching `routing_key`."""
        gids = self.routes.get(routing_key)
        if gids is None:
            gids = tuple(
                gid
                for gid, patterns in self.patterns.items()
                if any(matches(p, routing_key) for p in patterns)
            )
            self.routes[routing_key] = gids
        return gids

    def gid(self, group: str) -> int:
        """The id of a declared group; raise `ConfigError` for an unknown one."""
        gid = self.gids.get(group)
        if gid is None:
            raise ConfigError(f"group {group!r} is not declared")
        return gid


class Txn:
    """What the ops of one batch share: the connection, the time, the caches, and what to
    report after the commit (groups to wake, counters to bump, wake-up ports of reply
    inboxes that got a reply)."""

    __slots__ = ("acked", "conn", "notify", "now", "published", "reply_ports", "topology")

    def __init__(self, conn: sqlite3.Connection, now: float, topology: Topology) -> None:
        self.conn = conn
        self.now = now
        self.topology = topology
        self.notify: set[int] = set()
        self.reply_ports: set[int] = set()
        self.published: dict[int, int] = {}
        self.acked: dict[int, int] = {}

    def next_seq(self) -> int:
        """The highest log sequence number so far.

        Log rows still referenced by a delivery are never deleted, so max + 1 is above every
        position a delivery points to even if clean-up removed the newest rows.
        """
        row = self.conn.execute("SELECT max(seq) FROM log").fetchone()
        return int(row[0] or 0)

    def bump_version(self, column: str) -> None:
        """Tell every process to reload its cached topology or port list."""
        self.conn.execute(f"UPDATE state SET {column} = {column} + 1")

    def flush_counters(self) -> None:
        """Add this batch's publish and ack counts to the current time bucket."""
        if not self.published and not self.acked:
            return
        bucket = int(self.now // COUNTER_BUCKET)
        rows = [
            (gid, bucket, self.published.get(gid, 0), self.acked.get(gid, 0))
            for gid in self.published.keys() | self.acked.keys()
        ]
        self.conn.executemany(
            "INSERT INTO counters (gid, bucket, published, acked) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (gid, bucket) DO UPDATE SET published = published + excluded.published,"
            " acked = acked + excluded.acked",
            rows,
        )


class WriteOp:
    """One queued write; `future` is resolved on the event loop after the commit."""

    __slots__ = ("future",)
    phase: ClassVar[int] = 2
    durable: ClassVar[bool] = False
    """Commit with the configured ``synchronous`` level (FULL by default). Ops whose loss
    on power failure only causes a redelivery (claims, leases, settles) commit with NORMAL;
    the next durable commit syncs them too, since the WAL is one file written in order."""

    def __init__(self) -> None:
        self.future: asyncio.Future[object] | None = None

    def apply(self, tx: Txn) -> object:
        """Run this op's statements inside the batch's transaction; return its result."""
        raise NotImplementedError

    @classmethod
    def apply_all(cls, tx: Txn, ops: Sequence[WriteOp]) -> list[object]:
        """Apply several ops of this class; classes that can share statements override it."""
        return [op.apply(tx) for op in ops]


def insert_group(tx: Txn, spec: GroupSpec) -> int:
    """Create a group of the namespace with its bindings; return its id."""
    cur = tx.conn.execute(
        "INSERT INTO groups (ns, name, ordered, concurrency, max_ready, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (tx.topology.ns, spec.name, int(spec.ordered), spec.concurrency, spec.max_ready, tx.now),
    )
    gid = int(cur.lastrowid or 0)
    tx.conn.executemany(
        "INSERT INTO bindings (gid, pattern) VALUES (?, ?)", [(gid, p) for p in set(spec.patterns)]
    )
    tx.bump_version("bindings_version")
    return gid


INSERT_LOG = (
    "INSERT INTO log (seq, id, type, key, body, content_type, headers, published_at, target,"
    " retained, ns, reply_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_DELIVERY = (
    "INSERT INTO deliveries (gid, log_seq, key, attempt, available_at, replayed)"
    " VALUES (?, ?, ?, 1, ?, ?)"
)
