"""The in-process memory transport (``memory://name``): tests and single-process tools."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._options import split_options
from ._broker import MemoryBroker
from ._options import MemoryOptions
from ._transport import MemoryTransport

__all__ = ["MemoryBroker", "MemoryOptions", "MemoryTransport", "create_transport"]


def create_transport(url: str, options: Mapping[str, Any]) -> MemoryTransport:
    """The factory of ``memory://`` URLs (see `tidings.transports.TransportFactory`).

    Raises:
        ConfigError: an option the memory transport does not take (it takes none beyond the
            common ones), or a URL that is not ``memory://...``.
    """
    common, _ = split_options(options, MemoryOptions, transport="memory")
    return MemoryTransport(url, common)
