"""tidings: event-driven messaging for Python services.

Typed events and commands, confirmed publishing, retries that never block a worker,
dead-letter queues you can inspect and replay, idempotent consumers — on an embedded durable
broker with no set-up, or on RabbitMQ, with the same application code.
"""

from __future__ import annotations

from ._codec.envelope import Envelope
from ._core.bus import Bus
from ._core.context import Context
from ._core.dlq import DeadLetter, DeadLetters
from ._core.failure_groups import FailureGroup
from ._core.failures import Failure
from ._core.messages import Command, Event
from ._core.middleware import Middleware, Outcome
from ._core.middleware import Publication as Publication
from ._core.retry import Retry
from ._exceptions import (
    BrokerUnavailable,
    ConfigError,
    DeadLetterNotFound,
    MessageTooLarge,
    NotSupported,
    Permanent,
    QueueFull,
    RemoteError,
    RequestTimeout,
    StateError,
    TidingsError,
    Unroutable,
)
from ._version import __version__
from .outbox import OutboxStats
from .transports import GroupStats

# `Publication` (what a publish middleware is given) is importable from here too; it is
# not in `__all__`, which lists what the API returns and what users build on.
__all__ = [
    "BrokerUnavailable",
    "Bus",
    "Command",
    "ConfigError",
    "Context",
    "DeadLetter",
    "DeadLetterNotFound",
    "DeadLetters",
    "Envelope",
    "Event",
    "Failure",
    "FailureGroup",
    "GroupStats",
    "MessageTooLarge",
    "Middleware",
    "NotSupported",
    "Outcome",
    "OutboxStats",
    "Permanent",
    "QueueFull",
    "RemoteError",
    "RequestTimeout",
    "Retry",
    "StateError",
    "TidingsError",
    "Unroutable",
    "__version__",
]
