"""Failure groups: the dead letters of a group that failed the same way, as ServicePulse
groups failed messages, so an operator fixes one bug and replays its whole group.

Entries fail the same way when they have the same exception type, the same handler and
the same innermost frame of their traceback (its file and function: the line number is
left out of the signature, so a deploy that moves the code around does not split a group).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..transports._failure import RawDeadLetter

__all__ = ["FailureGroup", "FailureGrouping", "signature", "top_frame"]

_FRAME = re.compile(r'^[ \t|+-]*File "(?P<file>[^"\n]*)", line (?P<line>\d+), in (?P<func>[^\n]*)$')
_LIBS = (
    re.compile(r"/(?:site|dist)-packages/(.+)$"),  # installed packages, first
    re.compile(r"/lib/python\d+(?:\.\d+)*/(.+)$"),  # the standard library
)
_PART_LIMIT = 200  # characters of a file name or function name kept


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Dead letters of one group that failed the same way (what `DeadLetters.groups`
    returns, and ``tidings dlq groups`` shows).

    Attributes:
        signature: a short hash of the exception type, the handler and the innermost frame
            (its file and function), the same in every process and on every run; give it
            (or a unique prefix) to ``tidings dlq replay --failure-group``.
        exception_type: qualified name of the exception, if one caused the failures.
        handler: qualified name of the handler the entries' event type goes to in the
            group, when the bus knows it (a bus with the application's subscribers).
        top_frame: where the exception was raised, e.g. ``shop/payment.py:42 in charge``
            (of the latest entry; library paths start after ``site-packages``), or ``""``
            without a traceback.
        count: how many entries.
        first_seen: when the earliest of them was dead-lettered (UTC).
        last_seen: when the latest of them was dead-lettered (UTC).
        entry_ids: their entry ids, oldest first.
    """

    signature: str
    exception_type: str | None
    handler: str | None
    top_frame: str
    count: int
    first_seen: datetime
    last_seen: datetime
    entry_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: times as ISO 8601 strings (what ``tidings dlq groups --json``
        prints)."""
        return {
            "signature": self.signature,
            "exception_type": self.exception_type,
            "handler": self.handler,
            "top_frame": self.top_frame,
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "entry_ids": list(self.entry_ids),
        }


def _short_path(path: str) -> str:
    """A file name as a frame shows it: after ``site-packages/`` (or the standard library's
    directory) for library code, else its last two parts (``shop/payment.py``)."""
    path = path.replace("\\", "/")
    for lib in _LIBS:
        found = lib.search(path)
        if found:
            return found.group(1)[-_PART_LIMIT:]
    parts = [p for p in path.split("/") if p]
    return "/".join(parts[-2:])[-_PART_LIMIT:] if parts else path


def top_frame(traceback: str) -> tuple[str, str]:
    """The innermost frame of a traceback as text: ``("shop/payment.py:42 in charge",
    "shop/payment.py in charge")``, the second without the line number; ``("", "")`` when
    the text has no frame.

    A chained traceback prints its causes first, so the last frame in the text is the
    innermost frame of the exception that was raised last.
    """
    last = None
    for line in traceback.splitlines():
        if "File " in line:
            last = _FRAME.match(line) or last
    if last is None:
        return "", ""
    file, func = _short_path(last["file"]), last["func"].strip()[:_PART_LIMIT]
    return f"{file}:{last['line']} in {func}", f"{file} in {func}"


def signature(exception_type: str | None, handler: str | None, frame: str) -> str:
    """The signature of a failure: 12 hex digits of a hash of its exception type, handler
    and innermost frame (without its line number)."""
    text = "\x00".join((exception_type or "", handler or "", frame))
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=6).hexdigest()


@dataclass(slots=True)
class _Gathering:
    exception_type: str | None
    handler: str | None
    top_frame: str
    first: float
    last: float
    entry_ids: list[str]


class FailureGrouping:
    """Gathers dead letters (oldest first) into failure groups as they are read, a page
    at a time, keeping only what a `FailureGroup` shows.

    Args:
        handler_of: the handler name for an event type, or None when unknown.
    """

    def __init__(self, handler_of: Callable[[str], str | None]) -> None:
        self._handler_of = handler_of
        self._found: dict[str, _Gathering] = {}

    def add(self, raw: RawDeadLetter) -> None:
        """Put one dead letter in its group."""
        handler = self._handler_of(raw.type)
        shown, frame = top_frame(raw.traceback)
        key = signature(raw.exception_type, handler, frame)
        at = raw.last_failed_at
        group = self._found.get(key)
        if group is None:
            self._found[key] = _Gathering(raw.exception_type, handler, shown, at, at, [])
            group = self._found[key]
        group.entry_ids.append(raw.entry_id)
        group.first = min(group.first, at)
        if at >= group.last:
            group.last, group.top_frame = at, shown

    def groups(self) -> list[FailureGroup]:
        """The groups so far, most entries first (the latest first among equals)."""
        groups = [
            FailureGroup(
                signature=key,
                exception_type=g.exception_type,
                handler=g.handler,
                top_frame=g.top_frame,
                count=len(g.entry_ids),
                first_seen=datetime.fromtimestamp(g.first, UTC),
                last_seen=datetime.fromtimestamp(g.last, UTC),
                entry_ids=list(g.entry_ids),
            )
            for key, g in self._found.items()
        ]
        groups.sort(key=lambda g: (-g.count, -g.last_seen.timestamp(), g.signature))
        return groups
