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
        file_mode: permission bits of a database file this process creates (its ``-wal``,
            ``-shm`` and ``-journal`` files take the same); ``0o600`` by default, ``0o660``
            for a web app and a worker running as different users of one group. The mode of
            an existing file is left alone.
        retention_bytes: most bytes the retained log keeps (256 MiB by default), on top of
            the bus's `retention` time: past it the oldest events are dropped first. Events
            a group has yet to receive are never dropped.

    Raises:
        ConfigError: a value of the wrong kind, naming the option.
    """

    synchronous: str = "FULL"
    poll_interval: float = 1.0
    busy_timeout: float = 10.0
    cleanup_interval: float = 60.0
    wake: bool = True
    durable_settle: bool = False
    file_mode: int = 0o600
    retention_bytes: int = 256 * 1024 * 1024

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
        mode = self.file_mode
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
            raise ConfigError(f"file_mode={mode!r}: expected permission bits such as 0o600")
        size = self.retention_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ConfigError(f"retention_bytes={size!r}: expected a positive number of bytes")
        if mode & 0o600 != 0o600:
            raise ConfigError(f"file_mode={mode:#o}: the owner must be able to read and write")
