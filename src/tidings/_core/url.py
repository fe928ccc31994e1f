"""The URL a bus uses when none is given."""

from __future__ import annotations

import os

from .._exceptions import ConfigError

__all__ = ["DEFAULT_URL", "resolve_url"]


DEFAULT_URL = "sqlite:///tidings.db"


def resolve_url(url: str | None) -> str:
    """The URL a bus uses: the one given, else ``TIDINGS_URL``, else the default file."""
    chosen = url or os.environ.get("TIDINGS_URL") or DEFAULT_URL
    if not isinstance(chosen, str):
        raise ConfigError(f"bus URL must be a string, not {type(chosen).__name__}")
    return chosen.strip()
