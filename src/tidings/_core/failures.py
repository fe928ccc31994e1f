"""The history of a dead letter: each time its event landed in a dead-letter queue.

A transport stores the failure that dead-lettered an entry and the message as it was
delivered, headers included, and nothing of the event's earlier visits to the queue. So
`DeadLetters.replay` writes what it knows into two headers of the message it sends back,
and when the replayed event fails again its new entry reads them (`history_of`): no
transport stores anything new, and every transport keeps them, as it keeps any header.

- ``tidings.history``: compact JSON, the earlier failures oldest first (the last
  `MAX_HISTORY`), each ``{"at": epoch seconds, "attempts": n, "exception_type": name or
  null, "message": text, "replayed": bool}``;
- ``tidings.replays``: how many times the event was replayed from a dead-letter queue.

They are named with a dot, not the ``tidings-`` prefix: transports keep ``tidings-*``
headers for their own bookkeeping and leave them out of the dead letters they return (the
RabbitMQ transport does), so a ``tidings-`` header would not come back. Handlers do not see
them in ``ctx.headers`` (`visible_headers`), as they do not see a transport's bookkeeping.

Headers come off the wire and may hold anything: one that cannot be read is ignored (the
entry's history is then its own failure only), never an error in a listing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..transports._failure import RawDeadLetter

__all__ = [
    "HISTORY_HEADER",
    "MAX_HISTORY",
    "REPLAYS_HEADER",
    "Failure",
    "history_of",
    "read_history",
    "replay_headers",
    "visible_headers",
]

HISTORY_HEADER = "tidings.history"
REPLAYS_HEADER = "tidings.replays"
MAX_HISTORY = 20
"""Failures a replayed message carries, the most recent kept (``replays`` counts them all)."""

_MESSAGE_LIMIT = 200  # characters of an earlier failure's message carried along
_TYPE_LIMIT = 200
_HEADER_LIMIT = 64 * 1024  # a longer history header is not parsed at all
_MAX_COUNT = 1_000_000
_MAX_TIME = 253_402_300_799.0  # the last second of the year 9999 (epoch seconds)


@dataclass(frozen=True, slots=True)
class Failure:
    """One time an event landed in a dead-letter queue (an item of `DeadLetter.history`).

    Attributes:
        at: when it was dead-lettered (UTC).
        attempts: how many times the handler ran before that.
        exception_type: qualified name of the exception that caused it, if any.
        message: the exception message (the first 200 characters, for earlier failures).
        replayed: True when the event had been replayed from the dead-letter queue before
            this failure.
    """

    at: datetime
    attempts: int
    exception_type: str | None
    message: str
    replayed: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: `at` as an ISO 8601 string."""
        return {
            "at": self.at.isoformat(),
            "attempts": self.attempts,
            "exception_type": self.exception_type,
            "message": self.message,
            "replayed": self.replayed,
        }


def _count(value: object) -> int | None:
    """`value` as a count from 0 to a million, or None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if 0 <= number <= _MAX_COUNT else None


def _failure(item: object) -> Failure | None:
    """One failure of a history header, or None when it is not one."""
    if not isinstance(item, dict):
        return None
    at, attempts = item.get("at"), item.get("attempts")
    exception_type, message = item.get("exception_type"), item.get("message")
    replayed = item.get("replayed")
    if isinstance(at, bool) or not isinstance(at, int | float):
        return None
    if not (math.isfinite(at) and 0 <= at <= _MAX_TIME):
        return None
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        return None
    if _count(attempts) is None or not isinstance(replayed, bool):
        return None
    if exception_type is not None and not isinstance(exception_type, str):
        return None
    if not isinstance(message, str):
        return None
    return Failure(
        at=datetime.fromtimestamp(at, UTC),
        attempts=attempts,
        exception_type=exception_type[:_TYPE_LIMIT] if exception_type is not None else None,
        message=message[:_MESSAGE_LIMIT],
        replayed=replayed,
    )


def _parse_history(text: str | None) -> list[Failure] | None:
    """The failures of a history header; None when it is missing or cannot be read."""
    if text is None or len(text) > _HEADER_LIMIT:
        return None
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(items, list) or len(items) > MAX_HISTORY:
        return None
    failures = [_failure(item) for item in items]
    if any(f is None for f in failures):
        return None
    return [f for f in failures if f is not None]


def read_history(headers: Mapping[str, str]) -> tuple[list[Failure], int]:
    """The earlier failures and the replay count a replayed message carries.

    A header that cannot be read is ignored: no earlier failures, and a replay count taken
    from the history when only the count is unreadable.
    """
    earlier = _parse_history(headers.get(HISTORY_HEADER))
    replays = _count(headers.get(REPLAYS_HEADER))
    if replays is None:
        replays = sum(f.replayed for f in earlier) if earlier else 0
    return earlier or [], replays


def history_of(raw: RawDeadLetter) -> tuple[list[Failure], int]:
    """The whole history of a dead letter, its own failure last, and its replay count."""
    earlier, replays = read_history(raw.headers)
    current = Failure(
        at=datetime.fromtimestamp(raw.last_failed_at, UTC),
        attempts=raw.attempts,
        exception_type=raw.exception_type,
        message=raw.message,
        replayed=replays > 0,
    )
    return [*earlier, current], replays


def _encode(failure: Failure) -> dict[str, Any]:
    return {
        "at": failure.at.timestamp(),
        "attempts": failure.attempts,
        "exception_type": (failure.exception_type or "")[:_TYPE_LIMIT] or None,
        "message": failure.message[:_MESSAGE_LIMIT],
        "replayed": failure.replayed,
    }


def replay_headers(raw: RawDeadLetter) -> dict[str, str]:
    """The history headers of the message that replays `raw`: its failures so far (the
    last `MAX_HISTORY`), and one more replay."""
    failures, replays = history_of(raw)
    kept = [_encode(f) for f in failures[-MAX_HISTORY:]]
    return {
        HISTORY_HEADER: json.dumps(kept, separators=(",", ":"), ensure_ascii=False),
        REPLAYS_HEADER: str(min(replays + 1, _MAX_COUNT)),
    }


def visible_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """`headers` without the history headers, which are bookkeeping, not the user's (the
    mapping itself when it has none, the common case)."""
    if HISTORY_HEADER not in headers and REPLAYS_HEADER not in headers:
        return headers
    return {k: v for k, v in headers.items() if k not in (HISTORY_HEADER, REPLAYS_HEADER)}
