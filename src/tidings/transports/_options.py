"""Settings a bus hands to its transport."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .._clock import Clock, SystemClock

__all__ = ["TransportOptions"]


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Settings a bus hands to its transport.

    Attributes:
        name: the bus namespace (RabbitMQ exchange name, queue prefix).
        lease: seconds a claimed delivery stays invisible to other consumers; renewed while
            the handler runs (embedded broker).
        retention: seconds published events are kept in the retained log.
        max_message_size: largest encoded message accepted, in bytes.
        dedupe_url: URL of an external dedupe store, if any.
        dedupe_ttl: seconds a dedupe marker lives.
        clock: time source (a `ManualClock` in tests).
        extra: transport-specific keyword options given to `Bus(...)`.
    """

    name: str = "tidings"
    lease: float = 30.0
    retention: float = 7 * 24 * 3600.0
    max_message_size: int = 1024 * 1024
    dedupe_url: str | None = None
    dedupe_ttl: float = 24 * 3600.0
    clock: Clock = field(default_factory=SystemClock)
    extra: Mapping[str, object] = field(default_factory=dict)
