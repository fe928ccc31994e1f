"""Failures as the pipeline records them, and dead letters as transports store them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Failure", "RawDeadLetter"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a delivery failed, as the pipeline records it.

    Attributes:
        reason: one line a person reads (e.g. ``"ValueError: card declined"``).
        exception_type: qualified name of the exception class, if an exception caused it.
        message: the exception message (or the reason when there was no exception).
        traceback: a trimmed traceback, possibly empty.
        at: epoch seconds of the failure.
    """

    reason: str
    exception_type: str | None
    message: str
    traceback: str
    at: float


@dataclass(frozen=True, slots=True)
class RawDeadLetter:
    """A dead-letter entry as stored by the transport (body still encoded).

    Attributes:
        entry_id: the transport's id of the entry (unique within the group's DLQ).
        group: the group whose dead-letter queue holds it.
        id, type, body, content_type, headers, key: the message as it was delivered.
        reason, exception_type, message, traceback: the `Failure` that dead-lettered it.
        attempts: deliveries made before it was dead-lettered.
        first_failed_at: epoch seconds of its first failed attempt.
        last_failed_at: epoch seconds of the failure that dead-lettered it.
    """

    entry_id: str
    group: str
    id: str | None
    type: str
    body: bytes
    content_type: str | None
    headers: Mapping[str, str]
    key: str | None
    reason: str
    exception_type: str | None
    message: str
    traceback: str
    attempts: int
    first_failed_at: float
    last_failed_at: float
