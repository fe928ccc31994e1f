"""Dead-letter queues: inspect, replay (optionally edited) and purge one group's entries."""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._codec.cloudevents import decode, decode_with_mode, encode
from .._codec.envelope import DecodeError, Envelope
from .._exceptions import ConfigError
from ..transports._failure import RawDeadLetter
from ..transports._message import OutgoingMessage
from ..transports._transport import Transport
from .failure_groups import FailureGroup, FailureGrouping
from .failures import (
    HISTORY_HEADER,
    REPLAYS_HEADER,
    Failure,
    history_of,
    read_history,
    replay_headers,
)
from .subscription import Group

__all__ = ["DeadLetter", "DeadLetters"]

_PAGE = 1000  # entries read at a time when every entry of a group is needed


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
        history: each time the event landed in a dead-letter queue, oldest first, this
            entry's own failure last (the last 20 earlier ones are kept).
        replays: how many times the event was replayed from a dead-letter queue.
        poisoned: it came back after ``poison_after`` replays (`Bus`, default 3):
            ``replay(all=True)`` leaves it alone unless ``include_poisoned=True``.
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
    history: list[Failure] = field(default_factory=list)
    replays: int = 0
    poisoned: bool = False

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
            "history": [f.to_dict() for f in self.history],
            "replays": self.replays,
            "poisoned": self.poisoned,
        }


def _to_public(raw: RawDeadLetter, poison_after: int = 3) -> DeadLetter:
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
    history, replays = history_of(raw)
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
        history=history,
        replays=replays,
        poisoned=replays >= poison_after,
    )


# Left off a replayed message: the retry bookkeeping starts again, and the history headers
# are written anew (`replay_headers`).
_RETRY_HEADERS = (
    "tidings-attempt",
    "tidings-first-failed-at",
    "tidings-last-failed-at",
    HISTORY_HEADER,
    REPLAYS_HEADER,
)


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
        headers.update(replay_headers(raw))
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

    Args:
        transport: the open transport of the bus.
        group: the group whose dead letters these are.
        now: the bus clock (epoch seconds).
        poison_after: replays after which an entry that fails again is poisoned.
        groups: the bus's groups by name (``bus.groups.get``), so `groups` can name the
            handler of each failure; None when the bus does not know its handlers.

    Attributes:
        group: the group whose dead letters these are.
        poison_after: replays after which an entry that fails again is poisoned.
    """

    def __init__(
        self,
        transport: Transport,
        group: str,
        now: Callable[[], float],
        poison_after: int = 3,
        groups: Callable[[str], Group | None] | None = None,
    ) -> None:
        self._transport = transport
        self.group = group
        self._now = now
        self.poison_after = poison_after
        self._groups = groups

    async def list(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """The entries, oldest first, a page at a time.

        Args:
            limit: most entries to return.
            offset: entries to skip from the oldest.

        Returns:
            The `DeadLetter` entries of the page.
        """
        raws = await self._transport.dlq_list(self.group, limit, offset)
        return [_to_public(r, self.poison_after) for r in raws]

    async def get(self, entry_id: str) -> DeadLetter:
        """One entry, by its entry id.

        Args:
            entry_id: the entry's id (`DeadLetter.entry_id`).

        Raises:
            DeadLetterNotFound: there is no entry with that id in this group.
        """
        raw = await self._transport.dlq_get(self.group, entry_id)
        return _to_public(raw, self.poison_after)

    async def replay(
        self,
        ids: Sequence[str] | None = None,
        *,
        all: bool = False,
        edit: Callable[[Any], Any] | None = None,
        include_poisoned: bool = False,
    ) -> int:
        """Send entries back to this group, attempts reset; return how many moved.

        Each event goes back to this group only, not through routing (other groups already
        had it), with its attempt count starting again at 1. An entry is removed once the
        broker confirmed its new message, so a crash in between leaves it in the queue.
        The event carries its history along: if it fails again, its new entry has
        ``replays`` one higher, and is `DeadLetter.poisoned` from ``poison_after`` on.

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
            include_poisoned: with ``all=True``, replay poisoned entries too (they are
                left in the queue otherwise); entries given by id are always replayed.

        Returns:
            How many entries went back to the group.

        Raises:
            ConfigError: neither `ids` nor ``all=True``, or both; or `edit` on an entry
                whose body cannot be decoded.
        """
        chosen = _choose(ids, all, "replay")
        if chosen is None and not include_poisoned:
            chosen = await self._unpoisoned_ids()
            if chosen == []:
                return 0
        rebuild = _rebuilder(edit, self._now)
        return await self._transport.dlq_replay(self.group, chosen, rebuild)

    async def _pages(self) -> AsyncIterator[builtins.list[RawDeadLetter]]:
        """Every entry as the transport stores it, oldest first, a page at a time (so a
        long queue is never held in memory whole)."""
        offset = 0
        while True:
            page = await self._transport.dlq_list(self.group, _PAGE, offset)
            yield page
            offset += len(page)
            if len(page) < _PAGE:
                return

    async def _unpoisoned_ids(self) -> builtins.list[str] | None:
        """The ids of the entries that are not poisoned; None when no entry is (so the
        transport replays everything its own way)."""
        keep: builtins.list[str] = []
        poisoned = False
        async for page in self._pages():
            for raw in page:
                if read_history(raw.headers)[1] >= self.poison_after:
                    poisoned = True
                else:
                    keep.append(raw.entry_id)
        return keep if poisoned else None

    async def groups(self) -> builtins.list[FailureGroup]:
        """The entries grouped by how they failed, most entries first.

        Entries are in one group when they have the same exception type, handler and
        innermost traceback frame (see `FailureGroup`), as ServicePulse groups failed
        messages: fix the bug one group shows, then replay the group's `entry_ids`.

        ```python
        for failure in await bus.dead_letters("payment").groups():
            print(failure.count, failure.exception_type, failure.top_frame)
        ```
        """
        grouping = FailureGrouping(self._handler_of)
        async for page in self._pages():
            for raw in page:
                grouping.add(raw)
        return grouping.groups()

    def _handler_of(self, event_type: str) -> str | None:
        group = self._groups(self.group) if self._groups is not None else None
        handler = group.handler_for(event_type) if group is not None else None
        return handler.name if handler is not None else None

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
