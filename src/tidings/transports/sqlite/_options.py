"""Options of the embedded broker (``Bus("sqlite:///bus.db", **options)``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..._exceptions import ConfigError

__all__ = ["SqliteOptions"]

_SYNCHRONOUS = ("FULL", "EXTRA", "NORMAL", "OFF")


@dataclass(frozen=True, slots=True)
class SqliteOptions:
    """The embedded broker's own options; each is checked when the object is made.

    Attributes:
        synchronous: ``"FULL"`` (default, durable against power loss), ``"EXTRA"``,
            ``"NORMAL"`` or ``"OFF"`` (any case). It applies to commits that confirm
            something: publishes, topology, DLQ moves. Lease bookkeeping and settles (claims,
            renewals, acks, retries, dead letters, dedupe marks) commit with NORMAL: a power
            failure can undo the last of them, which only causes a redelivery
            (at-least-once), and the next FULL commit makes them durable too.
        poll_interval: seconds between safety polls of an idle consumer.
        busy_timeout: seconds to wait for another process's write lock.
        cleanup_interval: seconds between background clean-ups.
        wake: send and receive cross-process wake-up datagrams.
        durable_settle: commit settles with `synchronous` as well.

    Raises:
        ConfigError: a value of the wrong kind, naming the option.
    """

    synchronous: str = "FULL"
    poll_interval: float = 1.0
    busy_timeout: float = 10.0
    cleanup_interval: float = 60.0
    wake: bool = True
    durable_settle: bool = False

    def __post_init__(self) -> None:
        text = str(self.synchronous).upper()
        if text not in _SYNCHRONOUS:
            choices = ", ".join(_SYNCHRONOUS)
            raise ConfigError(f"synchronous={self.synchronous!r}: use one of {choices}")
        object.__setattr__(self, "synchronous", text)
        for name in ("wake", "durable_settle"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(f"{name}={value!r}: expected True or False")
        for name in ("poll_interval", "busy_timeout", "cleanup_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{name}={value!r}: expected a positive number of seconds")
            object.__setattr__(self, name, float(value))
