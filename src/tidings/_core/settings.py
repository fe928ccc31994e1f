"""Small pieces of the bus's set-up: its lifecycle states, defaults and option checks."""

from __future__ import annotations

import enum
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError
from ..transports import Transport

__all__ = ["BusState", "MiB", "TransportFactory", "default_source", "positive"]

MiB = 1024 * 1024

TransportFactory = Callable[[str, Mapping[str, Any]], Transport]


class BusState(enum.Enum):
    """Lifecycle of a bus: it opens once and closes once."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


def default_source() -> str:
    """``tidings://<host>/<program>``: the CloudEvents source of a bus that names none."""
    program = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "python"
    return f"tidings://{socket.gethostname()}/{program or 'python'}"


def positive(option: str, value: object, *, integer: bool = False) -> None:
    """Refuse a value of `option` that is not a positive number (an integer if asked)."""
    kinds: type | tuple[type, ...] = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:  # type: ignore[operator]
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{option} must be {what}, not {value!r}")
