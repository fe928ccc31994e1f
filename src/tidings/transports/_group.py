"""Groups as transports see them: what to declare, and what they report."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GroupSpec"]


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A durable, named subscription: a queue bound with topic patterns.

    Attributes:
        name: the group's name.
        patterns: AMQP topic patterns (`*` one word, `#` zero or more words).
        concurrency: most deliveries of the group one consumer holds at a time.
        ordered: deliveries of one key are handed out one at a time, in publish order; a
            delivery waiting for its retry holds back the later ones of its key only.
        max_ready: most ready messages the group holds; a publish past it raises
            `QueueFull` (retries already accepted still return). None: unbounded.
    """

    name: str
    patterns: tuple[str, ...]
    concurrency: int = 16
    ordered: bool = False
    max_ready: int | None = None
