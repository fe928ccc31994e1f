"""Transports: the broker bindings under the bus, and the public interface they implement.

A transport moves opaque messages (bytes plus headers) between a bus and a broker; see
`Transport`. Everything a third-party transport needs is exported here, so it never imports a
private module: the value types it receives and returns, the clock, topic matching, URL
masking, option splitting, and the registry (`register_transport`, the ``tidings.transports``
entry-point group). The transports shipped with tidings are sub-packages: `memory`, `sqlite`,
`rabbitmq` and `kafka`, each exporting its options class and its factory
``create_transport``.
"""

from __future__ import annotations

from .._clock import Clock, ManualClock, SystemClock
from ._failure import Failure, RawDeadLetter
from ._group import GroupSpec
from ._message import Delivery, OutgoingMessage
from ._options import COMMON_OPTIONS, TransportOptions, split_options
from ._registry import ENTRY_POINT_GROUP, TransportFactory, open_transport, register_transport
from ._routing import matches, validate_pattern
from ._stats import GroupStats
from ._transport import (
    CAP_ATOMIC_BATCH,
    CAP_DEDUPE,
    CAP_REPLAY_LOG,
    Claimed,
    Consumer,
    DedupeStore,
    Deliver,
    OnReply,
    Replies,
    Transport,
)
from ._urls import mask_url

__all__ = [
    "CAP_ATOMIC_BATCH",
    "CAP_DEDUPE",
    "CAP_REPLAY_LOG",
    "COMMON_OPTIONS",
    "Claimed",
    "ENTRY_POINT_GROUP",
    "Clock",
    "Consumer",
    "DedupeStore",
    "Deliver",
    "OnReply",
    "Replies",
    "Delivery",
    "Failure",
    "GroupSpec",
    "GroupStats",
    "ManualClock",
    "OutgoingMessage",
    "RawDeadLetter",
    "SystemClock",
    "Transport",
    "TransportFactory",
    "TransportOptions",
    "mask_url",
    "matches",
    "open_transport",
    "register_transport",
    "split_options",
    "validate_pattern",
]
