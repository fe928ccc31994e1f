"""Dead-letter queues: inspect, replay (optionally edited) and purge one group's entries."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._codec.cloudevents import decode, decode_with_mode, encode
from .._codec.envelope import DecodeError, Envelope
from .._exceptions import ConfigError
from ..transports._failure import RawDeadLetter
from ..transports._message import OutgoingMessage
from ..transports._transport import Transport

__all__ = ["DeadLetter", "DeadLetters"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of a group's dead-letter queue (what `DeadLetters.list` and `get` return).

    An event lands here when its handler raised `Permanent` or an exception its `Retry` does
    not retry, after its last attempt failed, or when it could not be decoded or validated.

    Attributes:
        entry_id: id of the entry in the group's dead-letter queue (give it to
            `DeadLetters.get`, `replay` or `purge`, or to ``tidings dlq show``).
        event_id: id of the dead-lettered event (None for a foreign message without one).
        type: its event type.
        group: the group it failed in.
        reason: why, in one line (e.g. ``"failed 5 of 5 attempts: TimeoutError: gateway
            timeout"``).
        exception_type: qualified name of the exception, if one caused it.
        message: the exception message.
        traceback: a trimmed traceback of the last failure, possibly empty.
        attempts: how many times the handler ran.
        first_failed_at: when its first attempt failed (UTC).
        last_failed_at: when it was dead-lettered (UTC).
        envelope: the CloudEvents attributes, or None when the body could not be decoded.
        data: the decoded data, or the raw body as text when it could not be decoded.
    """

    entry_id: str
    event_id: str | None
    type: str
    group: str
    reason: str
    exception_type: str | None
    message: str
    traceback: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    envelope: Envelope | None
    data: Any

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every attribute: times as ISO 8601 strings, the envelope as
        its CloudEvents attributes (what ``tidings dlq list --json`` prints)."""
        return {
            "entry_id": self.entry_id,
            "event_id": self.event_id,
            "type": self.type,
            "group": self.group,
            "reason": self.reason,
            "exception_type": self.exception_type,
            "message": self.message,
            "traceback": self.traceback,
            "attempts": self.attempts,
            "first_failed_at": self.first_failed_at.isoformat(),
            "last_failed_at": self.last_failed_at.isoformat(),
            "envelope": self.envelope.attributes() if self.envelope else None,
            "data": self.data,
        }


def _to_public(raw: RawDeadLetter) -> DeadLetter:
    envelope: Envelope | None
    try:
        envelope, data = decode(
            routing_key=raw.type,
            body=raw.body,
            content_type=raw.content_type,
            headers=raw.headers,
            message_id=raw.id,
        )
    except DecodeError:
        envelope, data = None, raw.body.decode("utf-8", errors="replace")
    return DeadLetter(
        entry_id=raw.entry_id,
        event_id=envelope.id if envelope else raw.id,
        type=envelope.type if envelope else raw.type,
        group=raw.group,
        reason=raw.reason,
        exception_type=raw.exception_type,
        message=raw.message,
        traceback=raw.traceback,
        attempts=raw.attempts,
        first_failed_at=datetime.fromtimestamp(raw.first_failed_at, UTC),
        last_failed_at=datetime.fromtimestamp(raw.last_failed_at, UTC),
        envelope=envelope,
        data=data,
    )


_RETRY_HEADERS = ("tidings-attempt", "tidings-first-failed-at", "tidings-last-failed-at")


def _rebuilder(
    edit: Callable[[Any], Any] | None, now: Callable[[], float]
) -> Callable[[RawDeadLetter], OutgoingMessage]:
    def rebuild(raw: RawDeadLetter) -> OutgoingMessage:
        headers = {k: v for k, v in raw.headers.items() if k not in _RETRY_HEADERS}
        body, content_type = raw.body, raw.content_type or "application/json"
        if edit is not None:
            try:
                envelope, data, mode = decode_with_mode(
                    routing_key=raw.type,
                    body=raw.body,
                    content_type=raw.content_type,
                    headers=raw.headers,
                    message_id=raw.id,
                )
            except DecodeError as exc:
                raise ConfigError(
                    f"dead letter {raw.entry_id} cannot be edited: its body is undecodable ({exc})"
                ) from exc
            new_data = edit(data)
            data_json = json.dumps(new_data, separators=(",", ":"), ensure_ascii=False).encode()
            if mode == "foreign":
                body = data_json
            else:
                body, content_type, ce = encode(envelope, data_json, mode)
                headers = {k: v for k, v in headers.items() if not k.startswith("ce-")}
                headers.update(ce)
        return OutgoingMessage(
            id=raw.id or "",
            type=raw.type,
            body=body,
            content_type=content_type,
            headers=headers,
            key=raw.key,
            group=raw.group,
            published_at=now(),
        )

    return rebuild


class DeadLetters:
    """The dead-letter queue of one group (from `Bus.dead_letters`).

    Every method is a coroutine that talks to the broker, so the bus must be open.

    Attributes:
        group: the group whose dead letters these are.
    """

    def __init__(
        self,
        transport: Transport,
        group: str,
        now: Callable[[], float],
        poison_after: int = 3,
    ) -> None:
        self._transport = transport
        self.group = group
        self._now = now
        self.poison_after = poison_after

    async def list(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """The entries, oldest first, a page at a time.

        Args:
            limit: most entries to return.
            offset: entries to skip from the oldest.

        Returns:
            The `DeadLetter` entries of the page.
        """
        raws = await self._transport.dlq_list(self.group, limit, offset)
        return [_to_public(r) for r in raws]

    async def get(self, entry_id: str) -> DeadLetter:
        """One entry, by its entry id.

        Args:
            entry_id: the entry's id (`DeadLetter.entry_id`).

        Raises:
            DeadLetterNotFound: there is no entry with that id in this group.
        """
        return _to_public(await self._transport.dlq_get(self.group, entry_id))

    async def replay(
        self,
        ids: Sequence[str] | None = None,
        *,
        all: bool = False,
        edit: Callable[[Any], Any] | None = None,
    ) -> int:
        """Send entries back to this group, attempts reset; return how many moved.

        Each event goes back to this group only, not through routing (other groups already
        had it), with its attempt count starting again at 1. An entry is removed once the
        broker confirmed its new message, so a crash in between leaves it in the queue.

        ```python
        await bus.dead_letters("inventory").replay(all=True)
        await bus.dead_letters("payment").replay(
            [entry.entry_id], edit=lambda data: {**data, "card": "4242"}
        )
        ```

        Args:
            ids: the entry ids to replay.
            all: replay every entry instead.
            edit: a function applied to each entry's decoded data (a ``dict`` for JSON
                objects) that returns the data to send instead, to fix a bad event.

        Returns:
            How many entries went back to the group.

        Raises:
            ConfigError: neither `ids` nor ``all=True``, or both; or `edit` on an entry
                whose body cannot be decoded.
        """
        chosen = _choose(ids, all, "replay")
        rebuild = _rebuilder(edit, self._now)
        return await self._transport.dlq_replay(self.group, chosen, rebuild)

    async def purge(self, ids: Sequence[str] | None = None, *, all: bool = False) -> int:
        """Delete entries for good.

        Args:
            ids: the entry ids to delete.
            all: delete every entry instead.

        Returns:
            How many entries were deleted.

        Raises:
            ConfigError: neither `ids` nor ``all=True``, or both.
        """
        return await self._transport.dlq_purge(self.group, _choose(ids, all, "purge"))

    def __repr__(self) -> str:
        return f"DeadLetters(group={self.group!r})"


def _choose(ids: Sequence[str] | None, all: bool, verb: str) -> list[str] | None:
    if all and ids:
        raise ConfigError(f"{verb}: give entry ids or all=True, not both")
    if all:
        return None
    if not ids:
        raise ConfigError(f"{verb}: give entry ids, or all=True")
    if isinstance(ids, str):
        return [ids]
    return list(ids)
