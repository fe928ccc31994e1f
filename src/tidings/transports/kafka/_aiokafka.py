"""The one door to aiokafka's internals, each use guarded, with a public fallback (tested
with aiokafka 0.14, the version the ``kafka`` extra allows up to).

- `batched`: the group coordinator's ``fetch_committed_offsets`` reads the committed offsets
  of many partitions in one request; the public ``committed`` takes one partition per
  request.
- `track`: offsets of a topic the client has no metadata for fail once and are asked again
  after a metadata refresh, one topic per round (seconds for a group's dozen topics);
  adding every topic to the client's tracked set first makes it one round.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["batched", "supported", "track"]

_disabled = False
"""Set by tests to force the public fallbacks."""


def supported(consumer: Any) -> bool:
    """True when this aiokafka has the internals used here."""
    client = getattr(consumer, "_client", None)
    coordinator = getattr(consumer, "_coordinator", None)
    return not _disabled and (
        callable(getattr(client, "set_topics", None))
        and isinstance(getattr(client, "_topics", None), set)
        and (coordinator is None or callable(getattr(coordinator, "fetch_committed_offsets", None)))
    )


def batched(consumer: Any) -> Any:
    """The coordinator's many-partition fetch of committed offsets, or None."""
    if _disabled:
        return None
    return getattr(getattr(consumer, "_coordinator", None), "fetch_committed_offsets", None)


async def track(consumer: Any, topics: Iterable[str]) -> None:
    """Have the consumer's client fetch metadata for `topics` in one refresh (nothing
    happens where the internals are missing: the client then finds them one by one)."""
    if _disabled:
        return
    client = getattr(consumer, "_client", None)
    tracked = getattr(client, "_topics", None)
    set_topics = getattr(client, "set_topics", None)
    if not isinstance(tracked, set) or not callable(set_topics):
        return
    missing = set(topics) - tracked
    if missing:
        await set_topics(tracked | missing)
