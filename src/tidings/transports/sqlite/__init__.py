"""The embedded broker (``sqlite:///path.db``): one SQLite file shared by the processes of a
host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._options import split_options
from ._connect import sqlite_path
from ._options import SqliteOptions
from ._transport import SqliteTransport

__all__ = ["SqliteOptions", "SqliteTransport", "create_transport", "sqlite_path"]


def create_transport(url: str, options: Mapping[str, Any]) -> SqliteTransport:
    """The factory of ``sqlite:///`` URLs (see `tidings.transports.TransportFactory`).

    Raises:
        ConfigError: an option the embedded broker does not know, a bad option value, or a
            malformed URL (before any file is touched).
    """
    common, settings = split_options(options, SqliteOptions, transport="sqlite")
    return SqliteTransport(url, common, settings)
