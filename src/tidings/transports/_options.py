"""Settings a bus hands to its transport: the common ones, and each transport's own.

`Bus(url, **options)` takes the common settings as named parameters and passes everything
else on to the transport. A transport's factory receives one mapping with both and splits it
with `split_options`: the common part becomes a `TransportOptions`, the rest goes to the
transport's own options class (a dataclass that checks its values), and a key neither knows
is refused with one line naming it. A misspelt option is an error, never a silent default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .._clock import Clock, SystemClock
from .._exceptions import ConfigError

__all__ = ["COMMON_OPTIONS", "TransportOptions", "split_options"]

Specific = TypeVar("Specific")


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """The settings every transport receives from its bus.

    Attributes:
        name: the bus namespace (RabbitMQ exchange name, queue prefix).
        lease: seconds a claimed delivery stays invisible to other consumers; renewed while
            the handler runs (embedded broker).
        retention: seconds published events are kept in the retained log.
        max_message_size: largest encoded message accepted, in bytes.
        dedupe_url: URL of an external dedupe store, if any.
        dedupe_ttl: seconds a dedupe marker lives.
        clock: time source (a `ManualClock` in tests).
        on_unroutable: the bus's policy, ``"error"`` or ``"ignore"``: a transport with
            `CAP_ATOMIC_BATCH` stores nothing of a call holding an unroutable message when
            it is ``"error"``.
    """

    name: str = "tidings"
    lease: float = 30.0
    retention: float = 7 * 24 * 3600.0
    max_message_size: int = 1024 * 1024
    dedupe_url: str | None = None
    dedupe_ttl: float = 24 * 3600.0
    clock: Clock = field(default_factory=SystemClock)
    on_unroutable: Literal["error", "ignore"] = "error"


COMMON_OPTIONS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(TransportOptions))
"""The keys of an options mapping that are common settings (`TransportOptions` fields)."""


def split_options(
    options: Mapping[str, Any], specific: type[Specific], *, transport: str
) -> tuple[TransportOptions, Specific]:
    """Split a factory's `options` into the common settings and the transport's own.

    Args:
        options: what the bus passed: `COMMON_OPTIONS` keys plus the transport's own.
        specific: the transport's options dataclass; its fields are the keys it accepts, and
            it checks their values itself (raising `ConfigError`).
        transport: the name used in the error (``"sqlite"`` gives "unknown sqlite option").

    Raises:
        ConfigError: a key that is neither common nor a field of `specific`, in one line
            that names it and lists the accepted ones.
    """
    known = {f.name for f in dataclasses.fields(specific) if f.init}  # type: ignore[arg-type]
    own = {k: v for k, v in options.items() if k not in COMMON_OPTIONS}
    unknown = sorted(set(own) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"unknown {transport} option(s) {', '.join(unknown)}; known: {accepted}")
    # A clock of None means "the default" (the real clock), as in `Bus(clock=None)`.
    common = TransportOptions(
        **{k: v for k, v in options.items() if k in COMMON_OPTIONS and (k, v) != ("clock", None)}
    )
    return common, specific(**own)
