"""The retained log on RabbitMQ: a stream queue ``<bus>.:log`` that `replay` reads from (no
group's queue has that name: ``:`` keeps it apart from ``<bus>.<group>``).

RabbitMQ's queues forget a message once it is acked; a stream (``x-queue-type=stream``)
keeps what it is given for ``x-max-age`` (the bus's ``retention``), whoever reads it. The
stream is *not* bound to the bus's exchange: a binding would make every publish routable and
hide `Unroutable`. Instead, after the broker confirmed a publish, the transport writes a copy
of each message it routed to the stream (`RetainedLog.record`) and waits for that confirm
too. The window: a publisher that dies between the two confirms has published an event the
log does not hold (it was delivered; only a later replay misses it). A copy the stream does
not take (the stream deleted, the broker gone meanwhile) is logged as a WARNING and the
publish still succeeds: its event was delivered.

The copies are batched: the records of a burst of publishes (those made in one event-loop
turn, or while the previous batch was being written) go to the stream as one message,
``tidings-log-batch`` = ``"1"``, whose body packs an entry per event (format: `_log_batch`),
one confirm for them all. A copy per event doubled the cost of a publish. Versions before
batching wrote one stream message per event, its bookkeeping in headers (``H_TARGET``,
``H_PUBLISHED``); a replay reads both kinds, so a stream written by either replays whole.

`RetainedLog.replay` first writes a marker to the stream, then reads from a little before
``since`` (a stream offset by timestamp starts at a whole chunk) up to that marker, and
sends each entry published at or after ``since`` that the group takes (sent to it, or of a
type its patterns match) back to that group only, marked replayed. A batch that cannot be
read is skipped with a WARNING. Each replay leaves its marker (a few bytes, one message of
the old kind) in the stream. Retention drops whole segments (500 MB each by default),
so an entry may outlive ``retention`` until its segment is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from ..._exceptions import BrokerUnavailable, ConfigError
from .._group import GroupSpec
from .._message import OutgoingMessage
from .._routing import matches
from .._urls import mask_url
from ._errors import reason, translate
from ._log_batch import (
    H_BATCH,
    H_PUBLISHED,
    H_TARGET,
    BadBatch,
    LogBatcher,
    LogEntry,
    batch_properties,
    chunks,
    old_entry,
    pack_entry,
    unpack,
)
from ._management import Management
from ._publisher import ConfirmedPublisher, Outbound
from ._wire import Names, to_amqp

__all__ = ["H_BATCH", "H_MARK", "RetainedLog", "unlogged"]

logger = logging.getLogger(__name__)

_UNLOGGED: ContextVar[bool] = ContextVar("tidings_rabbitmq_unlogged", default=False)

Publish = Callable[[Sequence[OutgoingMessage]], Awaitable[list[bool]]]


def unlogged(publish: Publish) -> Publish:
    """`publish` whose messages `RetainedLog.record` leaves out: copies of events the log
    holds already (a dead letter sent back to its group)."""

    async def publish_unlogged(messages: Sequence[OutgoingMessage]) -> list[bool]:
        token = _UNLOGGED.set(True)
        try:
            return await publish(messages)
        finally:
            _UNLOGGED.reset(token)

    return publish_unlogged


H_MARK = "tidings-log-mark"
"""Set on the marker a replay writes to find the end of the stream."""

SKEW = 60.0
"""Seconds before ``since`` a replay starts reading (stream chunks carry the broker's clock)."""
BATCH = 500
"""Entries sent back to the group per confirmed batch."""
PREFETCH = 1000
COPY_TIMEOUT = 5.0
"""Seconds a copy may wait for the stream's confirm (at most ``publish_timeout``)."""


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RetainedLog:
    """The bus's stream: written after each confirmed publish, read by `replay`.

    Args:
        names: the bus's names (the stream is ``names.stream``).
        url: the broker URL, for messages (its password masked).
        retention: seconds the stream keeps an entry (``x-max-age``).
        connection: the transport's open connection.
        send: publishes with confirm (the transport's publisher), per item True when routed.
        timeout: seconds a replay may wait for the next entry before giving up.
        management: the management API, where a replayed group's patterns are found when
            this process did not declare it.
    """

    def __init__(
        self,
        names: Names,
        url: str,
        *,
        retention: float,
        connection: Callable[[], AbstractRobustConnection],
        send: Callable[[Sequence[Outbound]], Awaitable[list[bool]]],
        timeout: float,
        management: Management,
    ) -> None:
        self.name = f"{names.prefix}.:log"
        self._direct = names.direct
        self._prefix = names.prefix
        self._management = management
        self._url = url
        self._age = f"{max(1, round(retention))}s"
        self._connection = connection
        self._send = send
        self._copies: AbstractChannel | None = None
        self._copier = ConfirmedPublisher(
            self._copy_channel, url=url, timeout=min(timeout, COPY_TIMEOUT), reconnect=self._back
        )
        self._batcher = LogBatcher(self._write)
        self._timeout = timeout
        self._declared = False
        self._warned_at = float("-inf")

    async def declare(self) -> None:
        """Declare the stream (idempotent). One that exists with another ``x-max-age`` (the
        bus's retention changed) is kept as it is, with a WARNING saying how to change it."""
        channel = await self._connection().channel()
        try:
            arguments = {"x-queue-type": "stream", "x-max-age": self._age}
            await channel.declare_queue(self.name, durable=True, arguments=arguments)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            logger.warning(
                "the retained log %r exists with other arguments (%s); keeping it as it is: "
                "change its retention with a policy (rabbitmqctl set_policy ... "
                '\'{"max-age":"%s"}\' --apply-to queues) or delete it to declare it anew',
                self.name,
                reason(exc),
                self._age,
            )
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        self._declared = True

    def _entry(
        self, message: OutgoingMessage, app_id: str, now: float, mark: str | None = None
    ) -> Outbound:
        """A stream message of the old kind, one per event (today only a replay's marker)."""
        extra = {H_TARGET: message.group or "", H_PUBLISHED: repr(message.published_at or now)}
        if mark is not None:
            extra[H_MARK] = mark
        copy = dataclasses.replace(message, delay=0.0, group=None, replayed=False)
        return "", self.name, message.body, to_amqp(copy, app_id, now, extra)

    async def record(
        self, messages: Sequence[OutgoingMessage], routed: Sequence[bool], app_id: str, now: float
    ) -> None:
        """Write a copy of each routed message to the stream and await its confirm; a copy
        the stream does not take is a WARNING (at most one a minute), never an error. The
        copies of concurrent records travel in one batch message (see the docstring)."""
        if _UNLOGGED.get():
            return
        entries = [pack_entry(m, now) for m, ok in zip(messages, routed, strict=True) if ok]
        if entries:
            await self._batcher.add(app_id, entries)

    async def _write(self, pending: Mapping[str, list[bytes]]) -> None:
        """Send packed entries as batch messages (per app id, cut by `chunks`), one confirm
        each; what the stream does not take is a WARNING. Never raises."""
        now = time.time()
        batches = [(app, c) for app, entries in pending.items() for c in chunks(entries)]
        items: list[Outbound] = [
            ("", self.name, b"".join(c), batch_properties(app, now)) for app, c in batches
        ]
        try:
            if not self._declared:
                await self.declare()
            taken = await self._copier.send(items)
        except Exception as exc:
            self._warn(sum(len(c) for _, c in batches), reason(exc))
            await self._renew()
            return
        if not all(taken):
            self._declared = False  # deleted under us: declared again on the next publish
            lost = sum(len(c) for (_, c), ok in zip(batches, taken, strict=True) if not ok)
            self._warn(lost, "the stream does not exist")

    async def _copy_channel(self) -> Any:
        """The driver channel the copies go on: a confirm channel of their own, so a stream
        that stops confirming (its leader lost, until the channel is renewed) never holds
        up the bus's publishes and retries."""
        channel = self._copies
        if channel is None:
            channel = await self._connection().channel(on_return_raises=True)
            self._copies = channel
        elif channel.is_closed:
            await channel.reopen()
        return await channel.get_underlay_channel()

    async def _back(self, deadline: float) -> None:
        """Wait (until `deadline`, monotonic) for the connection to come back."""
        await asyncio.sleep(0.2)
        with contextlib.suppress(TimeoutError):
            connected = self._connection().connected.wait()
            await asyncio.wait_for(connected, max(0.1, deadline - time.monotonic()))

    async def _renew(self) -> None:
        """After copies failed: a fresh channel for the next ones (RabbitMQ 3.10 can leave a
        channel that published to a stream whose leader was lost without confirms)."""
        channel = self._copies
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await (await channel.get_underlay_channel()).close()

    async def close(self) -> None:
        """Give up the copies still queued (a WARNING) and close the copies' channel."""
        lost = await self._batcher.close()
        if lost:
            self._warn(lost, "the transport was closed before the stream confirmed them")
        await self._copier.close()
        channel, self._copies = self._copies, None
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close()

    def _warn(self, count: int, why: str) -> None:
        now = time.monotonic()
        if now - self._warned_at < 60.0:
            return
        self._warned_at = now
        logger.warning(
            "%d published message(s) were delivered but not written to the retained log %r on "
            "%s (%s): a replay will not find them",
            count,
            self.name,
            mask_url(self._url),
            why,
        )

    async def _takes(self, group: str, spec: GroupSpec | None) -> Callable[[str, str | None], bool]:
        """Whether `group` takes an entry (of a type, sent to a group or None): its patterns
        from `spec` (declared by this process), else from its bindings (management API)."""
        if spec is not None:
            patterns = list(spec.patterns)
        else:
            found = await self._management.bindings(self._prefix)
            if found is None:
                raise ConfigError(
                    f"replaying group {group!r}: its patterns are unknown here (the bus has no "
                    "subscriber in it, and the management API does not answer: "
                    f"{self._management.failure}); give management_url, or replay from a bus "
                    "that subscribes the group"
                )
            own = {f"{self._prefix}.{group}", f"{self._prefix}.{group}.hash"}
            mine = [b for b in found if b.destination in own]
            if not any(b.source == self._direct and b.routing_key == group for b in mine):
                raise ConfigError(f"no group {group!r} on bus {self._prefix!r} to replay to")
            patterns = [b.routing_key for b in mine if b.source == self._prefix]

        def takes(kind: str, target: str | None) -> bool:
            if target is not None:
                return target == group
            return any(matches(p, kind) for p in patterns)

        return takes

    async def replay(self, group: str, since: float, *, spec: GroupSpec | None, now: float) -> int:
        """Send back to `group`, marked replayed, every entry published at or after `since`
        that it takes (sent to it, or of a type its patterns match; `spec` when this process
        declared the group). Returns how many.

        Raises:
            ConfigError: no such group, or its patterns cannot be found.
            BrokerUnavailable: the stream cannot be read to its end.
        """
        try:
            return await self._replay(group, since, spec=spec, now=now)
        except Exception as exc:
            raise translate(exc, self._url, f"replaying group {group!r}") from exc

    async def _replay(self, group: str, since: float, *, spec: GroupSpec | None, now: float) -> int:
        takes = await self._takes(group, spec)
        if not self._declared:
            await self.declare()
        mark = uuid.uuid4().hex
        marker = OutgoingMessage(id=f"mark-{mark}", type="tidings.log.mark", body=b"{}")
        if not all(await self._copier.send([self._entry(marker, "tidings", now, mark)])):
            raise BrokerUnavailable(f"the retained log {self.name!r} does not exist")
        start = datetime.fromtimestamp(max(0.0, min(since, now) - SKEW), UTC)
        channel = await self._connection().channel()
        try:
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.get_queue(self.name, ensure=False)
            async with queue.iterator(arguments={"x-stream-offset": start}) as entries:
                return await self._resend(entries, group, since, mark, takes)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _resend(
        self,
        entries: Any,
        group: str,
        since: float,
        mark: str,
        takes: Callable[[str, str | None], bool],
    ) -> int:
        count = 0
        batch: list[Outbound] = []
        while True:
            try:
                message: AbstractIncomingMessage = await asyncio.wait_for(
                    entries.__anext__(), self._timeout
                )
            except TimeoutError:
                raise BrokerUnavailable(
                    f"replaying {group!r} from the retained log {self.name!r} on "
                    f"{mask_url(self._url)}: no entry for {self._timeout:g}s before its end"
                ) from None
            await message.ack()  # a stream consumer's ack only gives it credit
            headers = message.headers or {}
            if _text(headers.get(H_MARK, "")) == mark:
                break
            for entry in self._entries(message, headers):
                if entry.published_at < since or not takes(entry.type, entry.target):
                    continue
                batch.append(self._again(entry, group, message.app_id or ""))
                if len(batch) >= BATCH:
                    count += await self._flush(batch)
                    batch = []
        return count + await self._flush(batch)

    def _entries(
        self, message: AbstractIncomingMessage, headers: Mapping[str, Any]
    ) -> list[LogEntry]:
        """The entries a stream message holds: those of a batch, the one of an old-style
        message, none for another replay's marker or a batch that cannot be read."""
        if H_MARK in headers:
            return []
        if H_BATCH not in headers:
            return [old_entry(message, headers)]
        try:
            return unpack(message.body)
        except BadBatch as exc:
            logger.warning(
                "skipping an unreadable batch in the retained log %r on %s (%s)",
                self.name,
                mask_url(self._url),
                exc,
            )
            return []

    def _again(self, entry: LogEntry, group: str, app_id: str) -> Outbound:
        again = OutgoingMessage(
            id=entry.id,
            type=entry.type,
            body=entry.body,
            content_type=entry.content_type,
            headers=entry.headers,
            key=entry.key,
            group=group,
            published_at=entry.published_at,
            replayed=True,
        )
        return self._direct, group, entry.body, to_amqp(again, app_id, time.time())

    async def _flush(self, batch: list[Outbound]) -> int:
        if not batch:
            return 0
        return sum(await self._send(batch))
