"""Bounded groups on the memory broker: a publish that would take a group past its
``max_ready`` is refused whole with `QueueFull`."""

from __future__ import annotations

from collections.abc import Sequence

from ..._exceptions import QueueFull
from ._broker import Queue

__all__ = ["check_bounds"]


def check_bounds(targets: Sequence[Sequence[Queue]], now: float) -> None:
    """Raise `QueueFull` when the messages of one publish call, going to `targets` (the
    queues of each message), would take a bounded group past its ``max_ready``.

    Only new messages are checked here: a retry, a postponement or a dead letter sent back
    was accepted before and always returns.
    """
    incoming: dict[str, int] = {}
    queues: dict[str, Queue] = {}
    for message_targets in targets:
        for queue in message_targets:
            if queue.spec.max_ready is not None:
                incoming[queue.spec.name] = incoming.get(queue.spec.name, 0) + 1
                queues[queue.spec.name] = queue
    full = [
        (name, queues[name].waiting(now), queues[name].spec.max_ready or 0)
        for name in sorted(incoming)
        if queues[name].waiting(now) + incoming[name] > (queues[name].spec.max_ready or 0)
    ]
    if not full:
        return
    held = ", ".join(f"{name!r} ({ready} ready, max_ready={bound})" for name, ready, bound in full)
    noun = "group" if len(full) == 1 else "groups"
    raise QueueFull(
        f"{noun} {held} cannot take this publish; nothing of it was stored: publish again "
        "once the consumers catch up (slow the producer down or add workers)",
        groups=[name for name, _, _ in full],
    )
