"""Transports: the broker bindings under the bus, and the public interface they implement.

A transport moves opaque messages (bytes plus headers) between a bus and a broker; see
`Transport`. Everything a third-party transport needs is exported here, so it never imports a
private module.
"""

from __future__ import annotations

from .._clock import Clock, ManualClock, SystemClock
from ._failure import Failure, RawDeadLetter
from ._group import GroupSpec
from ._message import Delivery, OutgoingMessage
from ._options import TransportOptions
from ._routing import matches, validate_pattern
from ._stats import GroupStats
from ._transport import (
    CAP_DEDUPE,
    CAP_REPLAY_LOG,
    Consumer,
    DedupeStore,
    Deliver,
    Transport,
)
from ._urls import mask_url

__all__ = [
    "CAP_DEDUPE",
    "CAP_REPLAY_LOG",
    "Clock",
    "Consumer",
    "DedupeStore",
    "Deliver",
    "Delivery",
    "Failure",
    "GroupSpec",
    "GroupStats",
    "ManualClock",
    "OutgoingMessage",
    "RawDeadLetter",
    "SystemClock",
    "Transport",
    "TransportOptions",
    "mask_url",
    "matches",
    "validate_pattern",
]
