"""Bus URLs: choosing a transport by scheme, and masking passwords for logs and errors."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from ._exceptions import ConfigError
from .transports._base import Transport, TransportOptions

__all__ = ["DEFAULT_URL", "mask_url", "open_transport", "resolve_url"]

DEFAULT_URL = "sqlite:///tidings.db"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LOOSE_CREDENTIALS = re.compile(r"([^:/@\s]*):[^@/\s]*@")
_PLANNED = {"kafka": "the Kafka transport is on the roadmap and not available in this release"}


def mask_url(url: str) -> str:
    """`url` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or not parts.scheme or not parts.netloc:
        # Not a well-formed URL (e.g. "admin:secret@host"): mask anything like user:pass@.
        return _LOOSE_CREDENTIALS.sub(r"\1:***@", url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve_url(url: str | None) -> str:
    """The URL a bus uses: the one given, else ``TIDINGS_URL``, else the default file."""
    chosen = url or os.environ.get("TIDINGS_URL") or DEFAULT_URL
    if not isinstance(chosen, str):
        raise ConfigError(f"bus URL must be a string, not {type(chosen).__name__}")
    return chosen.strip()


def open_transport(url: str, options: TransportOptions) -> Transport:
    """Build the transport for `url` (not yet opened); raise `ConfigError` for a bad URL."""
    if not _SCHEME.match(url):
        raise ConfigError(
            f"malformed bus URL {mask_url(url)!r}: expected scheme://..., e.g. "
            "sqlite:///tidings.db, memory://, amqp://user:pass@host/vhost"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        from .transports.memory import MemoryTransport

        return MemoryTransport(url, options)
    if scheme == "sqlite":
        from .transports.sqlite import SqliteTransport

        return SqliteTransport(url, options)
    if scheme in _PLANNED:
        raise ConfigError(f"unsupported bus URL scheme {scheme}://: {_PLANNED[scheme]}")
    if scheme in ("amqp", "amqps"):
        try:
            from .transports.rabbitmq import RabbitMQTransport
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
