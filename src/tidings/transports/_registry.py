"""Transports by URL scheme."""

from __future__ import annotations

import re

from .._exceptions import ConfigError
from ._options import TransportOptions
from ._transport import Transport
from ._urls import mask_url

__all__ = ["open_transport"]


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


_PLANNED = {"kafka": "the Kafka transport is on the roadmap and not available in this release"}


def open_transport(url: str, options: TransportOptions) -> Transport:
    """Build the transport for `url` (not yet opened); raise `ConfigError` for a bad URL."""
    if not _SCHEME.match(url):
        raise ConfigError(
            f"malformed bus URL {mask_url(url)!r}: expected scheme://..., e.g. "
            "sqlite:///tidings.db, memory://, amqp://user:pass@host/vhost"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        from .memory._transport import MemoryTransport

        return MemoryTransport(url, options)
    if scheme == "sqlite":
        from .sqlite._transport import SqliteTransport

        return SqliteTransport(url, options)
    if scheme in _PLANNED:
        raise ConfigError(f"unsupported bus URL scheme {scheme}://: {_PLANNED[scheme]}")
    if scheme in ("amqp", "amqps"):
        try:
            from .rabbitmq._transport import RabbitMQTransport
        except ImportError as exc:
            raise ConfigError(
                f"the {scheme}:// transport needs extra packages ({exc}): "
                "pip install 'tidings[rabbitmq]'"
            ) from exc
        return RabbitMQTransport(url, options)
    raise ConfigError(
        f"unknown bus URL scheme {scheme}:// in {mask_url(url)!r}: "
        "use sqlite:///path.db, memory:// or amqp://"
    )
