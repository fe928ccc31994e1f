"""The groups of a bus and their patterns, kept in a compacted topic keyed by group, so any
process can tell whether a publish reaches a group (else it is `Unroutable`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .._group import GroupSpec
from ._log import CompactedTable

__all__ = ["Binding", "Bindings"]

logger = logging.getLogger(__name__)

Send = Callable[[str, bytes, bytes | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Binding:
    """A group as stored: its patterns, whether it is ordered, and when it was made."""

    group: str
    patterns: tuple[str, ...]
    ordered: bool
    since: float


class Bindings:
    """The bindings table, read on demand (a miss is read again before it is believed)."""

    def __init__(self, table: CompactedTable, send: Send) -> None:
        self._table = table
        self._send = send
        self._groups: dict[str, Binding] = {}

    async def groups(self, *, refresh: bool = True) -> dict[str, Binding]:
        """Every group of the bus (`refresh` reads what other processes declared since)."""
        if refresh or not self._groups:
            rows = await self._table.refresh()
            groups: dict[str, Binding] = {}
            for name, record in rows.items():
                try:
                    value = json.loads(record.value or b"")
                    groups[name] = Binding(
                        name,
                        tuple(str(p) for p in value["patterns"]),
                        bool(value.get("ordered", False)),
                        float(value["since"]),
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    logger.warning("ignored an unreadable binding of group %r: %s", name, exc)
            self._groups = groups
        return self._groups

    def cached(self) -> dict[str, Binding]:
        return self._groups

    async def store(self, spec: GroupSpec, since: float) -> None:
        """Write (or update) the binding of `spec`."""
        value = {"patterns": list(spec.patterns), "ordered": spec.ordered, "since": since}
        await self._send(self._table.topic, spec.name.encode(), json.dumps(value).encode())
        self._groups[spec.name] = Binding(spec.name, spec.patterns, spec.ordered, since)
