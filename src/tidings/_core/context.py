"""The per-delivery `Context` a handler receives."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .._codec.envelope import Envelope
from .messages import Message

__all__ = ["Context", "Pending"]

_DERIVED_NS = uuid.UUID("5b7c7f52-2a2f-4d0e-9a51-0c6a3f0e7d11")


@dataclass(frozen=True, slots=True)
class Pending:
    """A message a handler published through its context, held until the handler succeeds."""

    message: Message
    id: str
    key: str | None
    to: str | None
    headers: Mapping[str, str] | None
    delay: float | None


class Context:
    """What a handler knows about the delivery it is handling, and how it publishes.

    Attributes:
        event_id: the incoming event's id.
        envelope: the CloudEvents attributes of the incoming event (read-only).
        group: the group handling it.
        attempt: 1 on first delivery, 2 on the first retry, ...
        key: the ordering key it was published with, if any.
        headers: transport headers as received (read-only).
        replayed: True when delivered by a replay (dedupe is bypassed).
    """

    __slots__ = (
        "event_id",
        "envelope",
        "group",
        "attempt",
        "key",
        "headers",
        "replayed",
        "_out",
        "_work",
    )

    def __init__(
        self,
        *,
        envelope: Envelope,
        group: str,
        attempt: int,
        key: str | None,
        headers: Mapping[str, str],
        replayed: bool,
    ) -> None:
        self.event_id = envelope.id
        self.envelope = envelope
        self.group = group
        self.attempt = attempt
        self.key = key
        self.headers: Mapping[str, str] = MappingProxyType(
            headers if isinstance(headers, dict) else dict(headers)
        )
        self.replayed = replayed
        self._out: list[Pending] = []
        # What the pipeline's stages know of this delivery (the raw delivery, the decoded
        # data, the chosen handler); None for a context made outside a pipeline.
        self._work: Any = None

    def _derived_id(self) -> str:
        # Same incoming event, group and position -> same id, so a re-run after a crash
        # between send and ack re-sends ids a deduping consumer drops.
        return str(uuid.uuid5(_DERIVED_NS, f"{self.group}\x00{self.event_id}\x00{len(self._out)}"))

    async def publish(
        self,
        event: Message,
        *,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
    ) -> str:
        """Publish `event` once the handler returns successfully; return its id now.

        The id is derived from the incoming event id and this message's position unless
        `id` is given. Correlation and causation ids are taken from the incoming event.
        """
        event_id = id or self._derived_id()
        self._out.append(Pending(event, event_id, key, None, headers, delay))
        return event_id

    async def send(
        self,
        command: Message,
        *,
        to: str,
        key: str | None = None,
        id: str | None = None,
        delay: float | None = None,
    ) -> str:
        """Send `command` to group `to` once the handler returns successfully."""
        event_id = id or self._derived_id()
        self._out.append(Pending(command, event_id, key, to, None, delay))
        return event_id

    @property
    def pending(self) -> tuple[Pending, ...]:
        """Messages held until the handler returns."""
        return tuple(self._out)

    def __repr__(self) -> str:
        return (
            f"Context(event_id={self.event_id!r}, group={self.group!r}, "
            f"attempt={self.attempt}, key={self.key!r}, replayed={self.replayed})"
        )
