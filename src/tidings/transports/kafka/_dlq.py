"""Dead-letter queues: ``<bus>__<group>.dlq``, compacted and keyed by entry id. An entry is
the message as it was delivered (value and headers), with the failure in one
``tidings-dead-letter`` header; replay and purge write tombstones for the entries they
remove, so the topic, read from the start, is always the current table."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence

from ..._exceptions import DeadLetterNotFound
from .._failure import Failure, RawDeadLetter
from .._message import Delivery, OutgoingMessage
from ._admin import TopicSpec, Topology
from ._log import CompactedTable, Raw, TopicReader
from ._names import Names
from ._wire import Record, copy_of, header_map

__all__ = ["DeadLetterQueues"]

H_DEAD_LETTER = "tidings-dead-letter"

SendRecord = Callable[[str, Record], Awaitable[None]]
Publish = Callable[[Sequence[OutgoingMessage]], Awaitable[list[bool]]]


def _raw(group: str, entry_id: str, record: Raw) -> RawDeadLetter | None:
    headers = header_map(record.headers)
    try:
        meta = json.loads(headers.get(H_DEAD_LETTER, ""))
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    user = {
        ("ce-" + k[3:] if k.startswith("ce_") else k): v
        for k, v in headers.items()
        if not k.startswith("tidings-") and k != "content-type"
    }
    return RawDeadLetter(
        entry_id=entry_id,
        group=group,
        id=meta.get("id") or None,
        type=str(meta.get("type", "")),
        body=record.value or b"",
        content_type=headers.get("content-type"),
        headers=user,
        key=meta.get("key"),
        reason=str(meta.get("reason", "")),
        exception_type=meta.get("exception_type"),
        message=str(meta.get("message", "")),
        traceback=str(meta.get("traceback", "")),
        attempts=int(meta.get("attempts", 1)),
        first_failed_at=float(meta.get("first_failed_at", 0.0)),
        last_failed_at=float(meta.get("last_failed_at", 0.0)),
    )


class DeadLetterQueues:
    """The dead-letter topics of a bus's groups."""

    def __init__(
        self,
        names: Names,
        reader: TopicReader,
        topology: Topology,
        send: SendRecord,
        publish: Publish,
    ) -> None:
        self._names = names
        self._reader = reader
        self._topology = topology
        self._send = send
        self._publish = publish
        self._tables: dict[str, CompactedTable] = {}

    async def _table(self, group: str, *, create: bool = False) -> CompactedTable | None:
        """The DLQ table of `group`; None when its topic does not exist (and `create` is
        not asked: reading the DLQ of a group nobody declared makes no topic)."""
        topic = self._names.dlq(group)
        if create:
            await self._topology.ensure({topic: TopicSpec(1, compacted=True)})
        elif group not in self._tables and topic not in await self._topology.topics(refresh=True):
            return None
        table = self._tables.get(group)
        if table is None:
            table = self._tables[group] = CompactedTable(self._reader, topic)
        return table

    async def add(self, delivery: Delivery, failure: Failure, now: float) -> None:
        """Write `delivery` to its group's DLQ with `failure`."""
        table = await self._table(delivery.group, create=True)
        assert table is not None
        first = delivery.first_failed_at if delivery.first_failed_at is not None else failure.at
        meta = {
            "id": delivery.id,
            "type": delivery.type,
            "key": delivery.key,
            "reason": failure.reason,
            "exception_type": failure.exception_type,
            "message": failure.message,
            "traceback": failure.traceback,
            "attempts": delivery.attempt,
            "first_failed_at": first,
            "last_failed_at": failure.at,
        }
        record = copy_of(delivery, now, {H_DEAD_LETTER: json.dumps(meta)})
        if delivery.content_type is None:
            record.headers[:] = [(k, v) for k, v in record.headers if k != "content-type"]
        entry = Record(uuid.uuid4().hex.encode(), record.value, record.headers, None)
        await self._send(table.topic, entry)

    async def entries(self, group: str) -> list[RawDeadLetter]:
        """Every entry of `group`'s DLQ, oldest first."""
        table = await self._table(group)
        if table is None:
            return []
        rows = await table.refresh()
        out = []
        for entry_id, record in rows.items():
            raw = _raw(group, entry_id, record)
            if raw is not None:
                out.append(raw)
        return out

    async def get(self, group: str, entry_id: str) -> RawDeadLetter:
        for raw in await self.entries(group):
            if raw.entry_id == entry_id:
                return raw
        raise DeadLetterNotFound(f"no dead letter {entry_id!r} in group {group!r}")

    async def _remove(self, group: str, entry_id: str) -> None:
        table = await self._table(group, create=True)
        assert table is not None
        await self._send(table.topic, Record(entry_id.encode(), None, [], None))  # tombstone

    async def replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        chosen = await self._chosen(group, entry_ids)
        moved = 0
        for raw in chosen:
            message = rebuild(raw)
            if (await self._publish([message]))[0]:
                await self._remove(group, raw.entry_id)
                moved += 1
        return moved

    async def purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        chosen = await self._chosen(group, entry_ids)
        for raw in chosen:
            await self._remove(group, raw.entry_id)
        return len(chosen)

    async def _chosen(self, group: str, entry_ids: Sequence[str] | None) -> list[RawDeadLetter]:
        entries = await self.entries(group)
        if entry_ids is None:
            return entries
        wanted = set(entry_ids)
        return [raw for raw in entries if raw.entry_id in wanted]
