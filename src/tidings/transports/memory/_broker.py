"""The state behind memory transports: queues of entries, dead letters, the log, dedupe
claims and markers.

Buses in one process that name the same ``memory://NAME`` share one `MemoryBroker`, so a
publisher bus and a worker bus in one test talk to each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from ..._exceptions import ConfigError
from .._failure import Failure, RawDeadLetter
from .._group import GroupSpec
from .._message import OutgoingMessage
from .._stats import GroupStats
from .._transport import OnReply

__all__ = ["Entry", "MemoryBroker", "Queue", "takeable"]

RATE_WINDOW = 60.0
"""Seconds over which publish and ack rates are averaged."""

DEAD_WINDOW = 300.0
"""Seconds over which recent dead letters are counted."""


@dataclass(slots=True, eq=False)
class Entry:
    """One message in one group's queue, until it is acknowledged or dead-lettered.

    `returned` is set once a consumer handed it back to wait for its time (a retry, a
    postponement): until that time it is not ready, unlike a delayed publish, which is.
    """

    seq: int
    message: OutgoingMessage
    enqueued_at: float
    available_at: float
    attempt: int = 1
    leased: bool = False
    first_failed_at: float | None = None
    returned: bool = False


@dataclass(slots=True, eq=False)
class Queue:
    """One group: its entries in publish order, its dead letters, its recent activity."""

    spec: GroupSpec
    entries: list[Entry] = field(default_factory=list)
    dead: list[RawDeadLetter] = field(default_factory=list)
    consumers: int = 0
    published: list[float] = field(default_factory=list)
    acked: list[float] = field(default_factory=list)

    def bury(self, entry: Entry, failure: Failure) -> None:
        """Move `entry` to the dead letters with `failure` recorded."""
        self.entries.remove(entry)
        msg = entry.message
        self.dead.append(
            RawDeadLetter(
                entry_id=str(uuid.uuid4()),
                group=self.spec.name,
                id=msg.id,
                type=msg.type,
                body=msg.body,
                content_type=msg.content_type,
                headers=dict(msg.headers),
                key=msg.key,
                reason=failure.reason,
                exception_type=failure.exception_type,
                message=failure.message,
                traceback=failure.traceback,
                attempts=entry.attempt,
                first_failed_at=entry.first_failed_at or failure.at,
                last_failed_at=failure.at,
            )
        )

    def waiting(self, now: float) -> int:
        """How many entries count against ``max_ready`` at `now`: those waiting to be taken,
        delayed publishes included; not those in flight or waiting for a retry."""
        return sum(
            1 for e in self.entries if not e.leased and (e.available_at <= now or not e.returned)
        )

    def stats(self, now: float) -> GroupStats:
        """The group's counters at `now` (forgetting activity older than the rate window)."""
        ready = [e for e in self.entries if not e.leased and e.available_at <= now]
        self.published = [t for t in self.published if t > now - RATE_WINDOW]
        self.acked = [t for t in self.acked if t > now - RATE_WINDOW]
        return GroupStats(
            group=self.spec.name,
            ready=len(ready),
            in_flight=sum(1 for e in self.entries if e.leased),
            scheduled=sum(1 for e in self.entries if not e.leased and e.available_at > now),
            dead=len(self.dead),
            consumers=self.consumers,
            oldest_age=max((now - e.enqueued_at for e in ready), default=0.0),
            publish_rate=len(self.published) / RATE_WINDOW,
            ack_rate=len(self.acked) / RATE_WINDOW,
            dead_recent=sum(1 for d in self.dead if d.last_failed_at > now - DEAD_WINDOW),
        )


def takeable(queue: Queue) -> Iterator[Entry]:
    """Unleased entries a consumer may take once they are due: in an ordered group only the
    head of each key (the later ones wait behind it, even while it waits for a retry)."""
    heads: set[str] = set()
    for entry in queue.entries:
        key = entry.message.key
        if queue.spec.ordered and key is not None:
            if key in heads:
                continue
            heads.add(key)
        if not entry.leased:
            yield entry


class MemoryBroker:
    """The shared state behind every `MemoryTransport` of one name.

    `MemoryBroker.shared` gives the broker of a ``memory://NAME`` URL; a transport built with
    a broker of its own (``MemoryTransport(url, options, broker=MemoryBroker())``) is private.
    """

    _shared: ClassVar[dict[str, MemoryBroker]] = {}

    def __init__(self) -> None:
        self.queues: dict[str, Queue] = {}
        self.log: list[tuple[float, OutgoingMessage]] = []
        self.markers: dict[tuple[str, str], float] = {}
        """(group, event id) -> when its "done" marker expires."""
        self.claims: dict[tuple[str, str], float] = {}
        """(group, event id) -> when the live claim on it (a copy in flight) expires."""
        self.inboxes: dict[str, OnReply] = {}
        """Reply inboxes (`open_replies`) by address."""
        self._seq = itertools.count(1)
        self._changed: list[asyncio.Event] = []
        self.version = 0

    @classmethod
    def shared(cls, url: str) -> MemoryBroker:
        """The broker every memory transport of `url` (``memory://NAME``) uses."""
        return cls._shared.setdefault(_name_of(url), cls())

    @classmethod
    def discard(cls, url: str) -> None:
        """Forget the shared broker of `url`: the next transport of that name starts empty."""
        cls._shared.pop(_name_of(url), None)

    def next_seq(self) -> int:
        """A number larger than every one handed out before."""
        return next(self._seq)

    def notify(self) -> None:
        """Wake every waiter: something was published, settled or declared."""
        self.version += 1
        for event in list(self._changed):
            event.set()

    def watch(self) -> asyncio.Event:
        """An event set on every `notify`, until `unwatch`."""
        event = asyncio.Event()
        self._changed.append(event)
        return event

    def unwatch(self, event: asyncio.Event) -> None:
        """Stop setting `event`."""
        with contextlib.suppress(ValueError):
            self._changed.remove(event)

    def idle(self, now: float) -> bool:
        """True when no delivery is ready now or in flight."""
        if any(e.leased for q in self.queues.values() for e in q.entries):
            return False
        return not any(e.available_at <= now for q in self.queues.values() for e in takeable(q))

    def next_available(self) -> float | None:
        """Earliest availability time of a delivery a consumer could take, if any."""
        times = [e.available_at for q in self.queues.values() for e in takeable(q)]
        return min(times) if times else None


def _name_of(url: str) -> str:
    if not url.startswith("memory://"):
        raise ConfigError(f"not a memory URL: {url!r}")
    return url[len("memory://") :].strip("/")
