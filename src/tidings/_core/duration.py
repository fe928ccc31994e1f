"""Points in time given as a datetime or as a duration back from now (``"10m"``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .._exceptions import ConfigError

__all__ = ["parse_duration", "parse_since"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"bad duration {text!r}: use a number and a unit, e.g. 30s, 10m, 2h, 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_since(since: datetime | str, now: float) -> float:
    """Epoch seconds of `since`: a datetime (naive means UTC), an ISO 8601 string, or a
    duration back from `now`."""
    if isinstance(since, datetime):
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        return moment.timestamp()
    if not isinstance(since, str):
        raise ConfigError(f"since must be a datetime or a string like '10m', not {since!r}")
    if _DURATION.match(since):
        return now - parse_duration(since)
    try:
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"bad time {since!r}: use a duration (10m, 2h, 1d) or an ISO 8601 timestamp"
        ) from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
