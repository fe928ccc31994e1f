"""Small pieces of the bus's set-up: its lifecycle states, defaults, option checks and the
transport it opens."""

from __future__ import annotations

import enum
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from .._clock import Clock, SystemClock
from .._exceptions import ConfigError, StateError
from ..outbox._settings import OutboxSettings
from ..transports import Transport, TransportOptions
from ..transports._registry import open_transport

__all__ = [
    "BusState",
    "MiB",
    "TransportFactory",
    "build_transport",
    "check_bus_options",
    "common_options",
    "default_source",
    "outbox_settings",
    "positive",
    "transport_given",
    "transport_options",
]

MiB = 1024 * 1024

TransportFactory = Callable[[str, Mapping[str, Any]], Transport]


class BusState(enum.Enum):
    """Lifecycle of a bus: it opens once and closes once."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"

    def check_new(self, what: str) -> None:
        """Raise `StateError` (saying `what` must be done first) unless the bus is new."""
        if self is not BusState.NEW:
            raise StateError(f"{what} before the bus is opened")

    def check_open(self, bus: str, transport: object) -> None:
        """Raise `StateError` unless the bus is open (with its `transport`)."""
        if self is not BusState.OPEN or transport is None:
            raise StateError(
                f"bus {bus!r} is {self.value}: use 'async with bus:' or 'await bus.start()' first"
            )

    def check_can_start(self, bus: str) -> None:
        """Raise `StateError` unless a bus in this state can start."""
        if self is BusState.OPEN:
            raise StateError(f"bus {bus!r} is already open")
        if self is BusState.CLOSED:
            raise StateError(f"bus {bus!r} is closed; create a new Bus")


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


def check_bus_options(
    on_unroutable: object,
    wire: object,
    max_message_size: object,
    lease: object,
    poison_after: object,
) -> None:
    """Refuse a bad value of the bus's own options with a `ConfigError` naming it."""
    if on_unroutable not in ("error", "ignore"):
        raise ConfigError(f"on_unroutable must be 'error' or 'ignore', not {on_unroutable!r}")
    if wire not in ("structured", "binary"):
        raise ConfigError(f"wire must be 'structured' or 'binary', not {wire!r}")
    positive("max_message_size", max_message_size)
    positive("lease", lease)
    positive("poison_after", poison_after, integer=True)


def common_options(
    name: str,
    lease: float,
    retention: float,
    max_message_size: int,
    dedupe: str | None,
    dedupe_ttl: float,
    clock: Clock,
    on_unroutable: Literal["error", "ignore"],
) -> TransportOptions:
    """The settings of `Bus` every transport receives."""
    return TransportOptions(
        name=name,
        lease=float(lease),
        retention=float(retention),
        max_message_size=int(max_message_size),
        dedupe_url=dedupe,
        dedupe_ttl=float(dedupe_ttl),
        clock=clock,
        on_unroutable=on_unroutable,
    )


def outbox_settings(
    retention: float,
    attempts: int,
    inbox_ttl: float,
    poll: float,
    lease: float,
    create_tables: bool,
) -> OutboxSettings:
    """The outbox options of `Bus` (``outbox_retention``, ``outbox_attempts``,
    ``inbox_ttl``, ``outbox_poll``, ``outbox_lease``, ``create_tables``), checked."""
    positive("outbox_retention", retention)
    positive("outbox_attempts", attempts, integer=True)
    positive("inbox_ttl", inbox_ttl)
    positive("outbox_poll", poll)
    positive("outbox_lease", lease)
    return OutboxSettings(
        retention=float(retention),
        attempts=attempts,
        inbox_ttl=float(inbox_ttl),
        poll=float(poll),
        lease=float(lease),
        create_tables=bool(create_tables),
    )


def transport_given(
    transport: Transport | TransportFactory | None, clock: Clock | None
) -> tuple[TransportFactory | None, Transport | None, Clock]:
    """Split `Bus(transport=...)` into a factory or an instance, and the bus's clock (an
    instance's own, else `clock`, else the system clock)."""
    if isinstance(transport, Transport):
        return None, transport, transport.options.clock
    if transport is not None and not callable(transport):
        raise ConfigError(
            "transport must be a tidings.transports.Transport or a factory "
            f"(url, options) -> Transport, not {type(transport).__name__}"
        )
    return transport, None, clock or SystemClock()


def transport_options(common: TransportOptions, own: Mapping[str, Any]) -> dict[str, Any]:
    """The one mapping a transport factory receives: the common settings and its own."""
    return {**{f.name: getattr(common, f.name) for f in fields(TransportOptions)}, **own}


def build_transport(
    factory: TransportFactory | None, url: str, options: Mapping[str, Any]
) -> Transport:
    """The transport `factory` makes (checked), or the registered one of `url`'s scheme."""
    if factory is None:
        return open_transport(url, options)
    made = factory(url, options)
    if not isinstance(made, Transport):
        raise ConfigError(f"the transport factory returned {type(made).__name__}, not a Transport")
    return made
