"""The `Publisher` a `Bus` publishes through, built from the bus's settings."""

from __future__ import annotations

from typing import Any

from .publishing import Publisher

__all__ = ["publisher_of"]


def publisher_of(bus: Any) -> Publisher:
    """A publisher for `bus` (a `Bus`): its options, source, wire mode and middleware, its transport
    (once open) and its outbox (for ``session=`` publishes)."""
    return Publisher(
        bus._options,
        source=bus.source,
        wire=bus.wire,
        middleware=bus.middleware,
        transport=lambda: bus.transport,
        stage=lambda session, messages: bus._outbox.stage(session, messages),
    )
