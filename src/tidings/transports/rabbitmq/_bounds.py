"""Which bounded groups refused a publish; messages over ``max_message_size`` refused.

A group with ``max_ready`` is a quorum queue (or partitions) with ``x-max-length`` and
``x-overflow=reject-publish``: a publish it cannot take is nacked by the broker (the other
groups of the event have it). The nack does not say which queue refused, so `FullGroups`
looks: the bounded groups the message could reach (those this transport declared, and those
the management API lists with an ``x-max-length``), and among them the ones at their bound
now, by a passive declare of each queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from ..._exceptions import MessageTooLarge, QueueFull
from .._group import GroupSpec
from .._message import OutgoingMessage
from .._routing import matches
from ._management import Management
from ._publisher import Refused
from ._stats import Depth
from ._topology import queue_bound
from ._wire import Names

__all__ = ["FullGroups", "Resend", "refuse_oversized"]

Resend = Callable[[list[int]], Awaitable[list[bool]]]
"""Sends the messages at these positions of a publish again; per message True when routed."""


def refuse_oversized(messages: Sequence[OutgoingMessage], limit: int) -> None:
    """Raise `MessageTooLarge` for the first message whose body is over `limit` bytes
    (``max_message_size``), before anything of the call is sent."""
    for message in messages:
        if len(message.body) > limit:
            raise MessageTooLarge(
                f"message {message.id!r} is {len(message.body)} bytes, over the limit of "
                f"{limit} bytes (max_message_size)"
            )


class FullGroups:
    """Finds the bounded groups behind a refused publish and makes the `QueueFull`.

    Args:
        names: the bus's exchange and queue names.
        partitions: queues per ordered group.
        management: the management API (for groups other processes declared).
        depth: a passive declare of one queue.
        declared: the groups this transport declared, by name.
    """

    def __init__(
        self,
        names: Names,
        partitions: int,
        management: Management,
        *,
        depth: Depth,
        declared: Callable[[], Mapping[str, GroupSpec]],
    ) -> None:
        self._names = names
        self._partitions = partitions
        self._management = management
        self._depth = depth
        self._declared = declared

    async def _bounded(self) -> dict[str, tuple[list[str], int, tuple[str, ...] | None]]:
        """Bounded groups: name -> (queues, ready bound per queue, patterns or None when
        unknown here)."""
        names = self._names
        found: dict[str, tuple[list[str], int, tuple[str, ...] | None]] = {}
        for spec in self._declared().values():
            bound = queue_bound(spec, self._partitions)
            if bound is not None:
                queues = (
                    [names.partition(spec.name, n) for n in range(self._partitions)]
                    if spec.ordered
                    else [names.queue(spec.name)]
                )
                found[spec.name] = (queues, bound, spec.patterns)
        for row in await self._management.queues(names.prefix) or []:
            if row.group is None or row.group in found or row.max_length is None:
                continue
            bound = row.max_length + 1  # see `_topology._bound_args`
            if row.name == names.queue(row.group):
                found[row.group] = ([row.name], bound, None)
            elif row.name == names.partition(row.group, 0):
                queues = [names.partition(row.group, n) for n in range(self._partitions)]
                found[row.group] = (queues, bound, None)
        return found

    async def after_refusal(
        self, refused: Refused, messages: Sequence[OutgoingMessage], resend: Resend
    ) -> list[bool]:
        """What a publish that the broker partly refused returns: `QueueFull` raised when a
        bounded group it reaches is full; otherwise the refused messages are sent once
        more (the confirm channel was renewed: a stale channel's nacks, see `_publisher`;
        a message that reached other groups may reach them twice, at least once) and the
        routed flags of the whole publish returned.

        Raises:
            QueueFull: a bounded group is full.
            Refused: refused again.
        """
        try:
            full = await self.refusal([messages[i] for i in refused.indices])
        except Exception as exc:
            raise refused from exc
        if full is not None:
            raise full from None
        routed = list(refused.routed)
        again = await resend(refused.indices)
        for i, ok in zip(refused.indices, again, strict=True):
            routed[i] = ok
        return routed

    async def refusal(self, messages: Sequence[OutgoingMessage]) -> QueueFull | None:
        """The `QueueFull` for refused `messages`, or None when no bounded group could
        have refused them (then the refusal was something else)."""
        candidates: list[str] = []
        full: list[str] = []
        for group, (queues, bound, patterns) in sorted((await self._bounded()).items()):
            if not any(_reaches(m, group, patterns) for m in messages):
                continue
            candidates.append(group)
            for queue in queues:
                depth = await self._depth(queue)
                if depth is not None and depth[0] >= bound:
                    full.append(group)
                    break
        # Drained since the refusal? Then name every bounded group it could have reached.
        groups = full or candidates
        if not groups:
            return None
        shown = ", ".join(repr(g) for g in groups)
        ids = ", ".join(repr(m.id) for m in messages[:3]) + (" ..." if len(messages) > 3 else "")
        which = f"groups {shown} at their" if len(groups) > 1 else f"group {shown} at its"
        return QueueFull(
            f"{which} max_ready bound refused {ids}: add consumers or raise max_ready; the "
            "event may have reached the other groups it is bound to, and publishing it again "
            "with the same id is absorbed by idempotent groups",
            groups=groups,
        )


def _reaches(message: OutgoingMessage, group: str, patterns: tuple[str, ...] | None) -> bool:
    if message.delay > 0:
        return False  # a delay tier took it; the group's bound applies when it comes due
    if message.group is not None:
        return message.group == group
    return patterns is None or any(matches(p, message.type) for p in patterns)
