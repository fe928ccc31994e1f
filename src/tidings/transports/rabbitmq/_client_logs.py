"""Keeping aio-pika's and aiormq's own log lines out of an application's log.

On a lost connection the client libraries log a dozen lines, some with tracebacks, and one
more per reconnect attempt; tidings logs one line when a connection is lost and one when it
is back (see `_connection`), and raises one clear error where an operation fails. So while a
transport is open, a `logging.Filter` on those libraries' loggers drops their records, unless
the library's logger is enabled for DEBUG (``--log-level debug``, or
``logging.getLogger("aio_pika").setLevel(logging.DEBUG)``): whoever asks for the detail gets
it. Nothing else of the application's logging is touched, and the filter goes when the last
transport of the process closes.

Filters of a logger apply to the records logged on that logger only (not to its children's),
so the filter goes on each of the libraries' module loggers.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["CLIENT_LOGGERS", "quiet_client_logs", "restore_client_logs"]

CLIENT_LOGGERS = ("aio_pika", "aiormq")
"""The libraries whose module loggers are filtered."""

_KNOWN = (
    "aio_pika.channel",
    "aio_pika.connection",
    "aio_pika.exchange",
    "aio_pika.queue",
    "aio_pika.robust_channel",
    "aio_pika.robust_connection",
    "aio_pika.robust_exchange",
    "aio_pika.robust_queue",
    "aio_pika.tools",
    "aiormq.channel",
    "aiormq.connection",
    "aiormq.connection.marshall",
)


class _DebugOnly(logging.Filter):
    """Lets a record through only when its logger is enabled for DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_filter = _DebugOnly()
_lock = threading.Lock()
_users = 0
_filtered: list[logging.Logger] = []


def _client_loggers() -> list[logging.Logger]:
    names = set(_KNOWN)
    names.update(
        name
        for name in list(logging.root.manager.loggerDict)
        if name.split(".", 1)[0] in CLIENT_LOGGERS
    )
    return [logging.getLogger(name) for name in sorted(names)]


def quiet_client_logs() -> None:
    """Install the filter (one more transport open); pair with `restore_client_logs`."""
    global _users
    with _lock:
        _users += 1
        if _users == 1:
            _filtered[:] = _client_loggers()
            for target in _filtered:
                target.addFilter(_filter)


def restore_client_logs() -> None:
    """One transport fewer; the last one removes the filter."""
    global _users
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0:
            for target in _filtered:
                target.removeFilter(_filter)
            _filtered.clear()
