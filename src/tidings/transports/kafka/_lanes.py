"""Which fetched records may be handed out now: an unordered group's records go at once; an
ordered group's wait while an earlier record of their key is in flight, and a partition with
a waiting retry hands out nothing more (the retry keeps its place: in place, not in a retry
topic that would reorder it)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import TopicPartition  # type: ignore[import-untyped]

__all__ = ["Lanes", "Waiting"]

Raw: TypeAlias = Any
"""An aiokafka ``ConsumerRecord`` (the driver ships no type information)."""


@dataclass(slots=True)
class Waiting:
    """An ordered group's record waiting for its retry, at the head of its partition."""

    record: Raw
    attempt: int
    first_failed_at: float | None
    due: float


@dataclass(slots=True)
class _Lane:
    queue: deque[Raw] = field(default_factory=deque)
    waiting: list[Waiting] = field(default_factory=list)


class Lanes:
    """The fetched records of a consumer's partitions that were not handed out yet."""

    def __init__(self, ordered: bool) -> None:
        self.ordered = ordered
        self._lanes: dict[TopicPartition, _Lane] = {}
        self._busy: dict[bytes, int] = {}

    def add(self, tp: TopicPartition, record: Raw) -> None:
        self._lanes.setdefault(tp, _Lane()).queue.append(record)

    @property
    def queued(self) -> int:
        return sum(len(lane.queue) for lane in self._lanes.values())

    @property
    def waiting(self) -> int:
        return sum(len(lane.waiting) for lane in self._lanes.values())

    def take(self, room: int) -> list[tuple[TopicPartition, Raw]]:
        """Records to hand out now, at most `room`, in each partition's order."""
        out: list[tuple[TopicPartition, Raw]] = []
        for tp, lane in self._lanes.items():
            if len(out) >= room:
                break
            if lane.waiting:
                continue
            if not self.ordered:
                while lane.queue and len(out) < room:
                    out.append((tp, lane.queue.popleft()))
                continue
            blocked: set[bytes] = set()
            for record in list(lane.queue):
                if len(out) >= room:
                    break
                key = record.key
                if key is not None and (key in self._busy or key in blocked):
                    blocked.add(key)
                    continue
                lane.queue.remove(record)
                self.started(record)
                out.append((tp, record))
        return out

    def started(self, record: Raw) -> None:
        """A record of an ordered group is in flight: its key waits."""
        if self.ordered and record.key is not None:
            self._busy[record.key] = self._busy.get(record.key, 0) + 1

    def finished(self, record: Raw) -> None:
        """A record of an ordered group was settled (or waits for its retry)."""
        if self.ordered and record.key is not None:
            left = self._busy.get(record.key, 0) - 1
            if left > 0:
                self._busy[record.key] = left
            else:
                self._busy.pop(record.key, None)

    def hold(self, tp: TopicPartition, waiting: Waiting) -> None:
        """The partition holds `waiting` until its retry is due (its key stays busy from when
        it started until it is settled for good). Several records of one partition may
        wait at once: those of other keys that were in flight when the first one failed."""
        self._lanes.setdefault(tp, _Lane()).waiting.append(waiting)

    def next_due(self, tp: TopicPartition) -> float | None:
        """When the first retry waiting in `tp` is due (None: none waits)."""
        lane = self._lanes.get(tp)
        return min(w.due for w in lane.waiting) if lane is not None and lane.waiting else None

    def release(self, tp: TopicPartition, now: float) -> list[Waiting]:
        """The retries waiting in `tp` that are due at `now`: they leave the lane (and are
        handed out again), in offset order."""
        lane = self._lanes.get(tp)
        if lane is None:
            return []
        due = sorted((w for w in lane.waiting if w.due <= now), key=lambda w: w.record.offset)
        lane.waiting = [w for w in lane.waiting if w.due > now]
        return due

    def drop(self, partitions: set[TopicPartition]) -> None:
        """Forget revoked partitions (their records come again to their next owner)."""
        for tp in partitions:
            lane = self._lanes.pop(tp, None)
            for waiting in lane.waiting if lane is not None else ():
                self.finished(waiting.record)
